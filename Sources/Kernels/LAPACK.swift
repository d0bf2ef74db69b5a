import CBLAS

/// The LAPACK routines of the dlopen'ed OpenBLAS that pruning needs: Cholesky
/// factorisation (xPOTRF) and the inverse from it (xPOTRI), in Double and Float.
///
/// LAPACK is Fortran: every argument is passed by pointer, matrices are
/// column-major, and gfortran appends the length of each character argument
/// as a hidden trailing integer (OpenBLAS's own C versions of POTRF ignore it).
/// Callers here think row-major; a row-major triangle is the opposite
/// column-major triangle, so `.upper` below is LAPACK's 'L' and `.lower` is 'U'.
/// A symmetric input matrix reads the same either way.
public enum LAPACK {
    /// Which triangle holds a Cholesky factor, in row-major terms.
    public enum Triangle: Sendable {
        /// A = L · Lᵀ, L lower triangular (row i has entries 0...i).
        case lower
        /// A = Uᵀ · U, U upper triangular (row i has entries i..<n).
        case upper

        /// LAPACK's UPLO character for this row-major triangle.
        var fortranCharacter: CChar {
            switch self {
            case .lower: return CChar(UInt8(ascii: "U"))
            case .upper: return CChar(UInt8(ascii: "L"))
            }
        }
    }

    typealias DoubleRoutine = @convention(c) (
        UnsafePointer<CChar>?, UnsafePointer<blasint>?, UnsafeMutablePointer<Double>?,
        UnsafePointer<blasint>?, UnsafeMutablePointer<blasint>?, Int) -> Void
    typealias FloatRoutine = @convention(c) (
        UnsafePointer<CChar>?, UnsafePointer<blasint>?, UnsafeMutablePointer<Float>?,
        UnsafePointer<blasint>?, UnsafeMutablePointer<blasint>?, Int) -> Void

    /// The four routines, resolved once from the loaded OpenBLAS.
    struct Routines: @unchecked Sendable {
        let dpotrf: DoubleRoutine
        let dpotri: DoubleRoutine
        let spotrf: FloatRoutine
        let spotri: FloatRoutine
    }

    static let routines: Result<Routines, KernelsError> = {
        do {
            let blas = try OpenBLAS.loaded.get()
            return .success(Routines(
                dpotrf: try blas.symbol("dpotrf_", as: DoubleRoutine.self),
                dpotri: try blas.symbol("dpotri_", as: DoubleRoutine.self),
                spotrf: try blas.symbol("spotrf_", as: FloatRoutine.self),
                spotri: try blas.symbol("spotri_", as: FloatRoutine.self)))
        } catch let error as KernelsError {
            return .failure(error)
        } catch {
            return .failure(.blasUnavailable(reason: "\(error)"))
        }
    }()

    // MARK: - Cholesky factorisation

    /// Factors the symmetric positive definite n×n matrix `a` (row-major) in place:
    /// afterwards `triangle` holds the Cholesky factor and the other triangle is zero.
    public static func choleskyFactorize(_ a: UnsafeMutablePointer<Double>, order n: Int,
                                         triangle: Triangle) throws(KernelsError) {
        let routine = try routines.get().dpotrf
        try call("dpotrf", order: n, triangle: triangle) { uplo, order, info in
            routine(uplo, order, a, order, info, 1)
        }
        zeroOtherTriangle(a, order: n, keeping: triangle)
    }

    /// Float version of `choleskyFactorize`.
    public static func choleskyFactorize(_ a: UnsafeMutablePointer<Float>, order n: Int,
                                         triangle: Triangle) throws(KernelsError) {
        let routine = try routines.get().spotrf
        try call("spotrf", order: n, triangle: triangle) { uplo, order, info in
            routine(uplo, order, a, order, info, 1)
        }
        zeroOtherTriangle(a, order: n, keeping: triangle)
    }

    // MARK: - Inverse from the factor

    /// Replaces a Cholesky factor in `triangle` of `a` (as `choleskyFactorize` left it)
    /// by the full symmetric inverse of the matrix it factors, both triangles filled.
    public static func invertFromCholesky(_ a: UnsafeMutablePointer<Double>, order n: Int,
                                          triangle: Triangle) throws(KernelsError) {
        let routine = try routines.get().dpotri
        try call("dpotri", order: n, triangle: triangle) { uplo, order, info in
            routine(uplo, order, a, order, info, 1)
        }
        mirror(a, order: n, from: triangle)
    }

    /// Float version of `invertFromCholesky`.
    public static func invertFromCholesky(_ a: UnsafeMutablePointer<Float>, order n: Int,
                                          triangle: Triangle) throws(KernelsError) {
        let routine = try routines.get().spotri
        try call("spotri", order: n, triangle: triangle) { uplo, order, info in
            routine(uplo, order, a, order, info, 1)
        }
        mirror(a, order: n, from: triangle)
    }

    /// Replaces the symmetric positive definite n×n matrix `a` by its inverse.
    public static func invertPositiveDefinite(_ a: UnsafeMutablePointer<Double>, order n: Int) throws(KernelsError) {
        try choleskyFactorize(a, order: n, triangle: .lower)
        try invertFromCholesky(a, order: n, triangle: .lower)
    }

    /// Float version of `invertPositiveDefinite`.
    public static func invertPositiveDefinite(_ a: UnsafeMutablePointer<Float>, order n: Int) throws(KernelsError) {
        try choleskyFactorize(a, order: n, triangle: .lower)
        try invertFromCholesky(a, order: n, triangle: .lower)
    }

    // MARK: - Plumbing

    /// Runs one routine with the Fortran arguments UPLO (for `triangle`), N and INFO,
    /// translating LAPACK's INFO into a typed error.
    private static func call(_ routine: String, order n: Int, triangle: Triangle,
                             _ body: (UnsafePointer<CChar>, UnsafePointer<blasint>,
                                      UnsafeMutablePointer<blasint>) -> Void) throws(KernelsError) {
        guard n >= 0, n <= Int(blasint.max) else {
            throw .lapackFailed(routine: routine, order: n, info: -2)
        }
        if n == 0 { return }
        var uplo = triangle.fortranCharacter
        var order = blasint(n)
        var info: blasint = 0
        body(&uplo, &order, &info)
        if info > 0 {
            throw routine.hasSuffix("potri")
                ? .singularMatrix(routine: routine, order: n, diagonal: Int(info))
                : .notPositiveDefinite(routine: routine, order: n, leadingMinor: Int(info))
        }
        if info < 0 { throw .lapackFailed(routine: routine, order: n, info: Int(info)) }
    }

    /// Sets the triangle opposite `keeping` (diagonal excluded) to zero; LAPACK leaves it as it was.
    static func zeroOtherTriangle<T: BinaryFloatingPoint>(_ a: UnsafeMutablePointer<T>, order n: Int,
                                                          keeping triangle: Triangle) {
        for row in 0..<n {
            let columns = triangle == .lower ? (row + 1)..<n : 0..<row
            for column in columns { a[row * n + column] = 0 }
        }
    }

    /// Copies `triangle` onto the opposite one, making `a` fully symmetric.
    static func mirror<T: BinaryFloatingPoint>(_ a: UnsafeMutablePointer<T>, order n: Int, from triangle: Triangle) {
        for row in 0..<n {
            for column in (row + 1)..<max(row + 1, n) {
                if triangle == .upper {
                    a[column * n + row] = a[row * n + column]
                } else {
                    a[row * n + column] = a[column * n + row]
                }
            }
        }
    }
}
