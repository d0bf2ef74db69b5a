import CBLAS
import Kernels

/// Double-precision products for Gram matrices: OpenBLAS `cblas_dgemm`, resolved at run time
/// through `OpenBLAS.library` like the single-precision kernels, with a naive reference beside it.
///
/// Row-major throughout. Shapes: A [m, k], B [n, k]; C [m, n] with leading dimension ldc.
enum DoubleProducts {
    typealias DgemmFunction = @convention(c) (
        CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, blasint, blasint, blasint,
        Double, UnsafePointer<Double>?, blasint, UnsafePointer<Double>?, blasint,
        Double, UnsafeMutablePointer<Double>?, blasint) -> Void

    /// nil when the library lacks the symbol (every OpenBLAS has it; the reference then serves).
    static let dgemm: DgemmFunction? = try? OpenBLAS.library.symbol("cblas_dgemm", as: DgemmFunction.self)

    /// C += A·Bᵀ.
    static func addProductTransposed(m: Int, n: Int, k: Int, a: UnsafePointer<Double>, lda: Int,
                                     b: UnsafePointer<Double>, ldb: Int, c: UnsafeMutablePointer<Double>, ldc: Int) {
        guard m > 0, n > 0, k > 0 else { return }
        guard let dgemm else {
            return referenceAddProductTransposed(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
        }
        dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(m), blasint(n), blasint(k),
              1, a, blasint(lda), b, blasint(ldb), 1, c, blasint(ldc))
    }

    /// C += A·Bᵀ by the definition, one dot product per entry.
    static func referenceAddProductTransposed(m: Int, n: Int, k: Int, a: UnsafePointer<Double>, lda: Int,
                                              b: UnsafePointer<Double>, ldb: Int, c: UnsafeMutablePointer<Double>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k { sum += a[i * lda + p] * b[j * ldb + p] }
                c[i * ldc + j] += sum
            }
        }
    }
}
