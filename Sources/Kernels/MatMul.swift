import CBLAS

/// Matrix products through OpenBLAS `cblas_sgemm`, row-major.
///
/// Glossary: op(A) is M×K, op(B) is K×N, C is M×N; `transposeA` means A is
/// stored K×M (and B stored N×K for `transposeB`). Leading dimensions are the
/// stored row lengths.

// MARK: - Raw buffers

/// C = alpha · op(A) · op(B) + beta · C.
public func sgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                  alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        // BLAS leaves C untouched when K = 0 only for beta = 1; make the other cases exact.
        for row in 0..<m { for col in 0..<n { c[row * ldc + col] = beta == 0 ? 0 : beta * c[row * ldc + col] } }
        return
    }
    OpenBLAS.library.sgemm(CblasRowMajor,
                           transposeA ? CblasTrans : CblasNoTrans,
                           transposeB ? CblasTrans : CblasNoTrans,
                           blasint(m), blasint(n), blasint(k),
                           alpha, a, blasint(lda), b, blasint(ldb),
                           beta, c, blasint(ldc))
}

/// Below this many multiply-adds OpenBLAS 0.3.21 runs a product on its caller's
/// thread (SMP_THRESHOLD_MIN × GEMM_MULTITHREAD_THRESHOLD), so a batch of such
/// products is spread over the worker pool instead.
let singleThreadedGemmLimit = 65_536 * 4

/// `batchCount` independent products C_i = alpha · op(A_i) · op(B_i) + beta · C_i,
/// the i-th operands starting `i × stride` elements after the first (attention heads).
public func batchedSgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                         alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, strideA: Int,
                         b: UnsafePointer<Float>, ldb: Int, strideB: Int,
                         beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int,
                         batchCount: Int) {
    let product = { (i: Int) in
        sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
              a: a + i * strideA, lda: lda, b: b + i * strideB, ldb: ldb,
              beta: beta, c: c + i * strideC, ldc: ldc)
    }
    if m * n * k < singleThreadedGemmLimit {
        WorkerPool.shared.parallelFor(batchCount) { range in range.forEach(product) }
    } else {
        for i in 0..<batchCount { product(i) }
    }
}

// MARK: - Tensors

/// The 2-D (rows × columns) reading of a tensor: all leading dimensions are rows.
@inline(__always)
func matrixShape(_ t: Tensor) -> (rows: Int, columns: Int) { (t.rowCount, t.rowLength) }

/// C = alpha · op(A) · op(B) + beta · C, with A, B and C read as 2-D (leading dimensions flattened).
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false,
                   into c: Tensor, alpha: Float = 1, beta: Float = 0) {
    let (aRows, aColumns) = matrixShape(a)
    let (bRows, bColumns) = matrixShape(b)
    let m = transposeA ? aColumns : aRows, k = transposeA ? aRows : aColumns
    let kB = transposeB ? bColumns : bRows, n = transposeB ? bRows : bColumns
    precondition(k == kB, "matmul: inner dimensions \(k) and \(kB) differ (A \(a.shape), B \(b.shape))")
    precondition(c.rowCount == m && c.rowLength == n, "matmul: C \(c.shape) is not \(m)×\(n)")
    sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
          a: a.pointer, lda: aColumns, b: b.pointer, ldb: bColumns,
          beta: beta, c: c.pointer, ldc: n)
}

/// op(A) · op(B) as a new tensor of shape [M, N], or A's leading dimensions + [N] when A is not transposed.
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    let m = transposeA ? a.rowLength : a.rowCount
    let n = transposeB ? b.rowCount : b.rowLength
    let shape = transposeA || a.rank < 2 ? [m, n] : Array(a.shape.dropLast()) + [n]
    let c = Tensor(zeros: shape)
    matmul(a, b, transposeA: transposeA, transposeB: transposeB, into: c)
    return c
}

// MARK: - Reference

/// The same product computed naively in Double, for tests of the fast path.
public func referenceSgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                           alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                           b: UnsafePointer<Float>, ldb: Int,
                           beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    for row in 0..<m {
        for col in 0..<n {
            var sum = 0.0
            for inner in 0..<k {
                let x = transposeA ? a[inner * lda + row] : a[row * lda + inner]
                let y = transposeB ? b[col * ldb + inner] : b[inner * ldb + col]
                sum += Double(x) * Double(y)
            }
            let previous = beta == 0 ? 0 : Double(beta) * Double(c[row * ldc + col])
            c[row * ldc + col] = Float(Double(alpha) * sum + previous)
        }
    }
}
