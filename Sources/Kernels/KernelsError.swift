/// Errors of the numeric core, each with a sentence for the user.
public enum KernelsError: Error, Sendable, Equatable, CustomStringConvertible {
    case blasUnavailable(reason: String)
    case blasSymbolMissing(library: String, symbol: String)
    case shapeMismatch(operation: String, detail: String)
    /// Cholesky factorisation found the leading minor of this order not positive definite (LAPACK INFO > 0).
    case notPositiveDefinite(routine: String, order: Int, leadingMinor: Int)
    /// The Cholesky factor has a zero on its diagonal, so the matrix has no inverse.
    case singularMatrix(routine: String, order: Int, diagonal: Int)
    /// LAPACK rejected an argument (INFO < 0) or the order does not fit its integers.
    case lapackFailed(routine: String, order: Int, info: Int)

    public var description: String {
        switch self {
        case .blasUnavailable(let reason):
            return "OpenBLAS could not be opened (\(reason)); install it with 'apt-get install libopenblas0' or run 'make deps'."
        case .blasSymbolMissing(let library, let symbol):
            return "OpenBLAS library \(library) has no symbol '\(symbol)'; it is too old or not OpenBLAS."
        case .shapeMismatch(let operation, let detail):
            return "\(operation): shapes do not match (\(detail))."
        case .notPositiveDefinite(let routine, let order, let minor):
            return "\(routine): the \(order)×\(order) matrix is not positive definite (leading minor \(minor) is not); add dampening or more calibration data."
        case .singularMatrix(let routine, let order, let diagonal):
            return "\(routine): the \(order)×\(order) matrix is singular (diagonal entry \(diagonal) of its Cholesky factor is zero)."
        case .lapackFailed(let routine, let order, let info):
            return "\(routine) failed on a \(order)×\(order) matrix (INFO \(info)): an argument was invalid or the order is too large."
        }
    }
}
