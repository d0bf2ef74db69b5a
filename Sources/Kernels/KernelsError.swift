/// Errors of the numeric core, each with a sentence for the user.
public enum KernelsError: Error, Sendable, Equatable, CustomStringConvertible {
    case blasUnavailable(reason: String)
    case blasSymbolMissing(library: String, symbol: String)
    case shapeMismatch(operation: String, detail: String)

    public var description: String {
        switch self {
        case .blasUnavailable(let reason):
            return "OpenBLAS could not be opened (\(reason)); install it with 'apt-get install libopenblas0' or run 'make deps'."
        case .blasSymbolMissing(let library, let symbol):
            return "OpenBLAS library \(library) has no symbol '\(symbol)'; it is too old or not OpenBLAS."
        case .shapeMismatch(let operation, let detail):
            return "\(operation): shapes do not match (\(detail))."
        }
    }
}
