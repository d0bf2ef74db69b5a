import CBLAS

/// Gram-matrix accumulation C ← alpha · AᵀA + beta · C through OpenBLAS's
/// `cblas_ssyrk` / `cblas_dsyrk` (symmetric rank-k update): half the work of
/// the equivalent `sgemm`, because only one triangle is computed.
///
/// Glossary: A is N rows × n columns (row-major, row length `lda`), C is n×n
/// (row length `ldc`). Only C's upper triangle (row-major: row i, columns
/// i..<n) is read and written; the lower triangle is left untouched.
enum GramRoutines {
    typealias FloatSyrk = @convention(c) (
        CBLAS_ORDER, CBLAS_UPLO, CBLAS_TRANSPOSE, blasint, blasint,
        Float, UnsafePointer<Float>?, blasint, Float, UnsafeMutablePointer<Float>?, blasint) -> Void
    typealias DoubleSyrk = @convention(c) (
        CBLAS_ORDER, CBLAS_UPLO, CBLAS_TRANSPOSE, blasint, blasint,
        Double, UnsafePointer<Double>?, blasint, Double, UnsafeMutablePointer<Double>?, blasint) -> Void

    struct Routines: @unchecked Sendable {
        let ssyrk: FloatSyrk
        let dsyrk: DoubleSyrk
    }

    static let routines: Result<Routines, KernelsError> = {
        do {
            let blas = try OpenBLAS.loaded.get()
            return .success(Routines(ssyrk: try blas.symbol("cblas_ssyrk", as: FloatSyrk.self),
                                     dsyrk: try blas.symbol("cblas_dsyrk", as: DoubleSyrk.self)))
        } catch let error as KernelsError {
            return .failure(error)
        } catch {
            return .failure(.blasUnavailable(reason: "\(error)"))
        }
    }()

    static func check(rows: Int, columns: Int, lda: Int, ldc: Int) throws(KernelsError) {
        guard rows >= 0, columns >= 0, lda >= max(columns, 1), ldc >= max(columns, 1),
              rows <= Int(blasint.max), lda <= Int(blasint.max), ldc <= Int(blasint.max) else {
            throw .shapeMismatch(operation: "gram update",
                                 detail: "A \(rows)×\(columns) with row length \(lda), C row length \(ldc)")
        }
    }
}

/// C ← alpha · AᵀA + beta · C (upper triangle of C only), A `rows`×`columns` Float.
public func accumulateGram(_ a: UnsafePointer<Float>, rows: Int, columns: Int, lda: Int,
                           into c: UnsafeMutablePointer<Float>, ldc: Int,
                           alpha: Float = 1, beta: Float = 1) throws(KernelsError) {
    try GramRoutines.check(rows: rows, columns: columns, lda: lda, ldc: ldc)
    guard columns > 0 else { return }
    try GramRoutines.routines.get().ssyrk(CblasRowMajor, CblasUpper, CblasTrans,
                                          blasint(columns), blasint(rows), alpha, a, blasint(lda),
                                          beta, c, blasint(ldc))
}

/// C ← alpha · AᵀA + beta · C (upper triangle of C only), A `rows`×`columns` Double.
public func accumulateGram(_ a: UnsafePointer<Double>, rows: Int, columns: Int, lda: Int,
                           into c: UnsafeMutablePointer<Double>, ldc: Int,
                           alpha: Double = 1, beta: Double = 1) throws(KernelsError) {
    try GramRoutines.check(rows: rows, columns: columns, lda: lda, ldc: ldc)
    guard columns > 0 else { return }
    try GramRoutines.routines.get().dsyrk(CblasRowMajor, CblasUpper, CblasTrans,
                                          blasint(columns), blasint(rows), alpha, a, blasint(lda),
                                          beta, c, blasint(ldc))
}
