import Foundation
import Testing
@testable import Kernels

/// OpenBLAS products against the naive Double `referenceSgemm`, with the kernel
/// set this process chose.
///
/// Tolerance: the textbook worst case for a K-term Float dot product,
/// |fl(c) − c| ≤ (K + 2)·2⁻²⁴·(|α|·Σ|a||b| + |β·c|), computed per element. A wrong
/// transpose, leading dimension or scaling misses it by orders of magnitude.
@Suite struct MatMulTests {
    /// A stored matrix of `rows` × `columns` inside rows of `leadingDimension`, the padding set to `padding`.
    struct Stored {
        var values: [Float]
        let rows: Int, columns: Int, leadingDimension: Int

        init(rows: Int, columns: Int, extra: Int, padding: Float, _ generator: inout TestRandom) {
            self.rows = rows
            self.columns = columns
            leadingDimension = columns + extra
            values = [Float](repeating: padding, count: rows * leadingDimension)
            for r in 0..<rows { for c in 0..<columns { values[r * leadingDimension + c] = generator.uniform(-1, 1) } }
        }

        var magnitudes: Stored {
            var copy = self
            copy.values = values.map { $0.isNaN ? 0 : abs($0) }
            return copy
        }
    }

    /// Runs sgemm and the reference on the same operands; returns failures of the bound and whether C's padding survived.
    static func compareProduct(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                               alpha: Float, beta: Float, seed: UInt64) -> (failures: Int, paddingKept: Bool) {
        var generator = TestRandom(seed: seed)
        // Padding of A and B is NaN: a kernel that reads past a row poisons C.
        let a = Stored(rows: transposeA ? k : m, columns: transposeA ? m : k, extra: 3, padding: .nan, &generator)
        let b = Stored(rows: transposeB ? n : k, columns: transposeB ? k : n, extra: 5, padding: .nan, &generator)
        let sentinel: Float = 12345
        let c = Stored(rows: m, columns: n, extra: 2, padding: sentinel, &generator)
        var fast = c.values, reference = c.values
        sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
              a: a.values, lda: a.leadingDimension, b: b.values, ldb: b.leadingDimension,
              beta: beta, c: &fast, ldc: c.leadingDimension)
        referenceSgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                       a: a.values, lda: a.leadingDimension, b: b.values, ldb: b.leadingDimension,
                       beta: beta, c: &reference, ldc: c.leadingDimension)
        // Σ|a||b| per element: the reference product of the magnitudes.
        var magnitude = [Float](repeating: 0, count: c.values.count)
        referenceSgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                       a: a.magnitudes.values, lda: a.leadingDimension, b: b.magnitudes.values, ldb: b.leadingDimension,
                       c: &magnitude, ldc: c.leadingDimension)
        var failures = 0, paddingKept = true
        for r in 0..<m {
            for col in 0..<c.leadingDimension {
                let i = r * c.leadingDimension + col
                if col >= n {
                    paddingKept = paddingKept && fast[i] == sentinel
                    continue
                }
                let scale = Double(abs(alpha)) * Double(magnitude[i]) + Double(abs(beta * c.values[i]))
                let tolerance = Double(k + 2) * 0x1p-24 * scale
                if !(abs(Double(fast[i]) - Double(reference[i])) <= tolerance) { failures += 1 }
            }
        }
        return (failures, paddingKept)
    }

    static let transposes: [(Bool, Bool)] = [(false, false), (false, true), (true, false), (true, true)]

    @Test(arguments: transposes)
    func smallProductMatchesTheReference(transposeA: Bool, transposeB: Bool) {
        // 3·5·7 multiply-adds: OpenBLAS runs it on the calling thread.
        let result = Self.compareProduct(transposeA: transposeA, transposeB: transposeB, m: 3, n: 5, k: 7,
                                         alpha: -1.25, beta: 0.75, seed: 31)
        #expect(result.failures == 0)
        #expect(result.paddingKept)
    }

    @Test(arguments: transposes)
    func largeProductMatchesTheReference(transposeA: Bool, transposeB: Bool) {
        // 200·300·150 = 9·10⁶ multiply-adds, above OpenBLAS's threading threshold (2.6·10⁵).
        #expect(200 * 300 * 150 > singleThreadedGemmLimit)
        let result = Self.compareProduct(transposeA: transposeA, transposeB: transposeB, m: 200, n: 300, k: 150,
                                         alpha: 0.5, beta: -2, seed: 32)
        #expect(result.failures == 0)
        #expect(result.paddingKept)
    }

    @Test func betaZeroIgnoresWhatCHeldAndKZeroScalesC() {
        var c = [Float](repeating: .nan, count: 6)
        let a: [Float] = [1, 2, 3, 4, 5, 6], b: [Float] = [1, 0, 0, 1, 1, 1]
        // [2×3] · [3×2]: beta = 0 must not propagate C's NaN.
        sgemm(transposeA: false, transposeB: false, m: 2, n: 2, k: 3, a: a, lda: 3, b: b, ldb: 2, c: &c, ldc: 3)
        #expect(Array(c[0..<2]) == [4, 5] && Array(c[3..<5]) == [10, 11])
        #expect(c[2].isNaN && c[5].isNaN)  // outside the 2×2 result
        var d: [Float] = [1, 2, 3, 4]
        sgemm(transposeA: false, transposeB: false, m: 2, n: 2, k: 0, a: a, lda: 1, b: b, ldb: 2, beta: 3, c: &d, ldc: 2)
        #expect(d == [3, 6, 9, 12])
        sgemm(transposeA: false, transposeB: false, m: 2, n: 2, k: 0, a: a, lda: 1, b: b, ldb: 2, c: &d, ldc: 2)
        #expect(d == [0, 0, 0, 0])
    }

    // MARK: - Batched

    static func compareBatch(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, batchCount: Int, seed: UInt64) -> Int {
        var generator = TestRandom(seed: seed)
        // Leading dimensions past the row length, and gaps between the operands of consecutive products.
        let (lda, ldb, ldc) = ((transposeA ? m : k) + 1, (transposeB ? k : n) + 2, n + 3)
        let (strideA, strideB, strideC) = ((transposeA ? k : m) * lda + 7, (transposeB ? n : k) * ldb + 5, m * ldc + 4)
        let a = Tensor(zeros: [strideA * batchCount]), b = Tensor(zeros: [strideB * batchCount])
        let c = Tensor(zeros: [strideC * batchCount])
        for t in [a, b, c] { generator.fill(t, -1, 1) }
        let absA = Tensor(shape: a.shape, values: a.scalars.map(abs)), absB = Tensor(shape: b.shape, values: b.scalars.map(abs))
        let (alpha, beta): (Float, Float) = (1.5, 0.25)
        let fast = c.copy(), reference = c.copy(), magnitude = Tensor(zeros: c.shape)
        batchedSgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                     a: a.pointer, lda: lda, strideA: strideA, b: b.pointer, ldb: ldb, strideB: strideB,
                     beta: beta, c: fast.pointer, ldc: ldc, strideC: strideC, batchCount: batchCount)
        for i in 0..<batchCount {
            referenceSgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                           a: a.pointer + i * strideA, lda: lda, b: b.pointer + i * strideB, ldb: ldb,
                           beta: beta, c: reference.pointer + i * strideC, ldc: ldc)
            referenceSgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                           a: absA.pointer + i * strideA, lda: lda, b: absB.pointer + i * strideB, ldb: ldb,
                           c: magnitude.pointer + i * strideC, ldc: ldc)
        }
        var failures = 0
        for i in 0..<batchCount {
            for r in 0..<m {
                for col in 0..<ldc {
                    let index = i * strideC + r * ldc + col
                    if col >= n {
                        if fast.pointer[index] != c.pointer[index] { failures += 1 }  // padding untouched
                        continue
                    }
                    let scale = Double(alpha) * Double(magnitude.pointer[index]) + Double(abs(beta * c.pointer[index]))
                    let error = abs(Double(fast.pointer[index]) - Double(reference.pointer[index]))
                    if !(error <= Double(k + 2) * 0x1p-24 * scale) { failures += 1 }
                }
            }
            for gap in (i * strideC + m * ldc)..<((i + 1) * strideC) where fast.pointer[gap] != c.pointer[gap] { failures += 1 }
        }
        return failures
    }

    @Test(arguments: transposes)
    func batchedSmallProductsMatchTheReference(transposeA: Bool, transposeB: Bool) {
        // 3·5·7 is below the threshold, so the batch is spread over the worker pool.
        #expect(3 * 5 * 7 < singleThreadedGemmLimit)
        #expect(Self.compareBatch(transposeA: transposeA, transposeB: transposeB, m: 3, n: 5, k: 7, batchCount: 13, seed: 33) == 0)
    }

    @Test(arguments: transposes)
    func batchedLargeProductsMatchTheReference(transposeA: Bool, transposeB: Bool) {
        // 80·70·60 is above it, so each product uses OpenBLAS's threads in turn.
        #expect(80 * 70 * 60 >= singleThreadedGemmLimit)
        #expect(Self.compareBatch(transposeA: transposeA, transposeB: transposeB, m: 80, n: 70, k: 60, batchCount: 3, seed: 34) == 0)
    }

    // MARK: - Tensors

    @Test func tensorMatmulFlattensLeadingDimensionsAndTransposes() {
        var generator = TestRandom(seed: 35)
        let a = Tensor(zeros: [2, 3, 4]), b = Tensor(zeros: [4, 5])
        generator.fill(a, -1, 1)
        generator.fill(b, -1, 1)
        let c = matmul(a, b)
        #expect(c.shape == [2, 3, 5])
        var expected = [Float](repeating: 0, count: 30)
        referenceSgemm(transposeA: false, transposeB: false, m: 6, n: 5, k: 4, a: a.pointer, lda: 4, b: b.pointer, ldb: 5,
                       c: &expected, ldc: 5)
        for i in 0..<30 { #expect(abs(c.pointer[i] - expected[i]) <= 6 * 0x1p-24 * 4) }

        // Aᵀ · B with A [6, 4] read as stored [K = 6, M = 4], and B [6, 5]: C [4, 5].
        let flatA = a.reshaped([6, 4]), b2 = Tensor(zeros: [6, 5])
        generator.fill(b2, -1, 1)
        let ct = matmul(flatA, b2, transposeA: true)
        #expect(ct.shape == [4, 5])
        var expectedT = [Float](repeating: 0, count: 20)
        referenceSgemm(transposeA: true, transposeB: false, m: 4, n: 5, k: 6, a: flatA.pointer, lda: 4, b: b2.pointer, ldb: 5,
                       c: &expectedT, ldc: 5)
        for i in 0..<20 { #expect(abs(ct.pointer[i] - expectedT[i]) <= 8 * 0x1p-24 * 6) }

        // A · Bᵀ into an existing C with alpha and beta: C = 2·A·Bᵀ − C.
        let bt = Tensor(zeros: [5, 4])
        generator.fill(bt, -1, 1)
        let into = Tensor(shape: [6, 5], repeating: 1)
        matmul(a, bt, transposeB: true, into: into, alpha: 2, beta: -1)
        var expectedInto = [Float](repeating: 1, count: 30)
        referenceSgemm(transposeA: false, transposeB: true, m: 6, n: 5, k: 4, alpha: 2, a: a.pointer, lda: 4, b: bt.pointer, ldb: 4,
                       beta: -1, c: &expectedInto, ldc: 5)
        for i in 0..<30 { #expect(abs(into.pointer[i] - expectedInto[i]) <= 6 * 0x1p-24 * 9) }
    }

    // MARK: - Kernel set

    @Test func openBLASRunsTheKernelSetChosenForThisCPU() throws {
        let blas = try Kernels.prepare()
        switch blas.coreChoice {
        case .detected(let core):
            // Not set by the user (ProcessInfo would now show our own setenv, so the choice records it).
            #expect(OpenBLAS.chooseCore(environment: [:], features: .current) == .detected(core))
            #expect(blas.coreName.lowercased() == core.lowercased(),
                    "OpenBLAS runs '\(blas.coreName)' although '\(core)' was chosen for \(CPUFeatures.current.modelName)")
        case .user(let core):
            // The user's override is theirs to get right; it must at least be what OpenBLAS was given.
            #expect(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == core)
        case .library:
            #expect(!blas.coreName.isEmpty)
        }
    }
}
