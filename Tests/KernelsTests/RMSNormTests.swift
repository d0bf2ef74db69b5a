import Foundation
import Testing
@testable import Kernels

/// RMSNorm against a Double implementation written here, and its backward
/// against that implementation's analytic gradient and central differences.
@Suite struct RMSNormTests {
    static let epsilon: Float = 1e-5
    /// Shapes [N, C]: C below, at and around the 16-wide vectors, and two that
    /// hold enough values (≥ 2 × 32K) to be split across the pool.
    static let shapes: [(rows: Int, columns: Int)] = [(1, 1), (3, 7), (2, 16), (4, 33), (5, 100), (64, 1031), (300, 257)]

    // MARK: - A naive Double RMSNorm, independent of the kernel's source

    /// y = x / sqrt(mean(x²) + eps) ⊙ w per row, in Double; also returns r per row.
    static func naiveForward(_ x: [Double], _ w: [Double], rows: Int, columns: Int, epsilon: Double) -> (y: [Double], r: [Double]) {
        var y = [Double](repeating: 0, count: x.count), r = [Double](repeating: 0, count: rows)
        for n in 0..<rows {
            let row = x[n * columns ..< (n + 1) * columns]
            r[n] = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(columns) + epsilon).squareRoot()
            for c in 0..<columns { y[n * columns + c] = x[n * columns + c] * r[n] * w[c] }
        }
        return (y, r)
    }

    /// The analytic gradient of L = Σ dy ⊙ y, in Double.
    static func naiveBackward(_ dy: [Double], _ x: [Double], _ w: [Double], rows: Int, columns: Int,
                              epsilon: Double) -> (dx: [Double], dw: [Double]) {
        let r = naiveForward(x, w, rows: rows, columns: columns, epsilon: epsilon).r
        var dx = [Double](repeating: 0, count: x.count), dw = [Double](repeating: 0, count: columns)
        for n in 0..<rows {
            var dot = 0.0
            for c in 0..<columns { dot += dy[n * columns + c] * w[c] * x[n * columns + c] }
            for c in 0..<columns {
                let i = n * columns + c
                dx[i] = r[n] * dy[i] * w[c] - r[n] * r[n] * r[n] / Double(columns) * x[i] * dot
                dw[c] += dy[i] * x[i] * r[n]
            }
        }
        return (dx, dw)
    }

    // MARK: - Forward

    @Test(arguments: shapes)
    func forwardMatchesADoublePrecisionRMSNorm(rows: Int, columns: Int) {
        var generator = TestRandom(seed: (1 << 32) + UInt64(rows * 10_000 + columns))
        let x = Tensor(shape: [rows, columns], values: generator.values(rows * columns))
        let w = Tensor(shape: [columns], values: generator.values(columns, 0.5, 1.5))
        let y = Tensor(zeros: [rows, columns]), rrms = Tensor(zeros: [rows])
        rmsNorm(x, weight: w, epsilon: Self.epsilon, into: y, reciprocalRMS: rrms)

        let expected = Self.naiveForward(x.scalars.map(Double.init), w.scalars.map(Double.init),
                                         rows: rows, columns: columns, epsilon: Double(Self.epsilon))
        // First-order worst case: Σx² of positive terms rounds at most
        // L = C/32 + 32 times along its longest chain (two 16-lane accumulators,
        // the lane sum, the scalar tail), so errs by ≤ L·u relative (u = 2⁻²⁴);
        // r = (Σ/C + eps)^(-1/2) halves that and adds three roundings, y two more.
        let chain = Double(columns / 32 + 32)
        let rTolerance = (chain / 2 + 3) * 0x1p-24, yTolerance = (chain / 2 + 5) * 0x1p-24
        var worst = 0.0
        for i in 0..<x.count {
            worst = max(worst, relativeError(y.pointer[i], expected.y[i], floor: 1e-30))
        }
        #expect(worst <= yTolerance, "worst relative error \(worst), allowed \(yTolerance)")
        for n in 0..<rows {
            #expect(abs(Double(rrms.pointer[n]) - expected.r[n]) <= rTolerance * expected.r[n])
        }
    }

    @Test func forwardAgreesWithTheReferenceKernelInTheSource() {
        var generator = TestRandom(seed: 2)
        let (rows, columns) = (6, 45)
        let x = generator.values(rows * columns), w = generator.values(columns)
        var fast = [Float](repeating: 0, count: x.count), reference = fast
        var fastR = [Float](repeating: 0, count: rows), referenceR = fastR
        rmsNormForward(x: x, weight: w, y: &fast, reciprocalRMS: &fastR, rows: rows, columns: columns, epsilon: Self.epsilon)
        referenceRMSNormForward(x: x, weight: w, y: &reference, reciprocalRMS: &referenceR,
                                rows: rows, columns: columns, epsilon: Self.epsilon)
        // The forward test's bound for C = 45, (45/32 + 32)/2 + 5 = 21.5 ulps, plus the reference's own rounding to Float.
        let tolerance: Float = 23 * 0x1p-24
        for i in 0..<x.count { #expect(abs(fast[i] - reference[i]) <= tolerance * abs(reference[i])) }
        for n in 0..<rows { #expect(abs(fastR[n] - referenceR[n]) <= tolerance * referenceR[n]) }
    }

    @Test func epsilonKeepsAnAllZeroRowFinite() {
        let x = Tensor(zeros: [2, 19]), w = Tensor(shape: [19], repeating: 1)
        let rrms = Tensor(zeros: [2])
        let y = Tensor(zeros: [2, 19])
        rmsNorm(x, weight: w, epsilon: 1e-6, into: y, reciprocalRMS: rrms)
        #expect(y.scalars.allSatisfy { $0 == 0 })
        #expect(abs(rrms.pointer[0] - 1000) <= 1000 * 1e-6)
    }

    @Test func scalingARowDoesNotChangeItsOutput() {
        // RMSNorm is scale invariant (up to eps): y(3x) = y(x).
        var generator = TestRandom(seed: 3)
        let x = Tensor(shape: [3, 50], values: generator.values(150))
        let scaled = Tensor(shape: [3, 50], values: x.scalars.map { 3 * $0 })
        let w = Tensor(shape: [50], values: generator.values(50))
        let a = rmsNorm(x, weight: w, epsilon: 0), b = rmsNorm(scaled, weight: w, epsilon: 0)
        for i in 0..<150 { #expect(abs(a.pointer[i] - b.pointer[i]) <= 1e-6 * max(abs(a.pointer[i]), 1)) }
    }

    // MARK: - Backward

    @Test func theDoubleGradientMatchesCentralDifferences() {
        // Holds the test's own analytic formula to the definition of a derivative,
        // so that the comparisons below are against a known-good gradient.
        var generator = TestRandom(seed: 4)
        let (rows, columns) = (3, 11)
        let x = generator.values(rows * columns).map(Double.init)
        let w = generator.values(columns, 0.5, 1.5).map(Double.init)
        let dy = generator.values(rows * columns).map(Double.init)
        let eps = Double(Self.epsilon)
        func loss(_ x: [Double], _ w: [Double]) -> Double {
            let y = Self.naiveForward(x, w, rows: rows, columns: columns, epsilon: eps).y
            return zip(dy, y).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let analytic = Self.naiveBackward(dy, x, w, rows: rows, columns: columns, epsilon: eps)
        let h = 1e-5
        for i in 0..<x.count {
            var plus = x, minus = x
            plus[i] += h
            minus[i] -= h
            let numeric = (loss(plus, w) - loss(minus, w)) / (2 * h)
            // Central differences in Double err by ~h² (10⁻¹⁰) plus 10⁻¹⁶/h (10⁻¹¹).
            #expect(abs(numeric - analytic.dx[i]) <= 1e-8, "dx[\(i)]: \(numeric) vs \(analytic.dx[i])")
        }
        for c in 0..<columns {
            var plus = w, minus = w
            plus[c] += h
            minus[c] -= h
            let numeric = (loss(x, plus) - loss(x, minus)) / (2 * h)
            #expect(abs(numeric - analytic.dw[c]) <= 1e-8, "dw[\(c)]: \(numeric) vs \(analytic.dw[c])")
        }
    }

    @Test(arguments: shapes)
    func backwardMatchesTheDoubleGradient(rows: Int, columns: Int) {
        var generator = TestRandom(seed: (5 << 32) + UInt64(rows * 10_000 + columns))
        let x = Tensor(shape: [rows, columns], values: generator.values(rows * columns))
        let w = Tensor(shape: [columns], values: generator.values(columns, 0.5, 1.5))
        let dy = Tensor(shape: [rows, columns], values: generator.values(rows * columns))
        let rrms = Tensor(zeros: [rows])
        rmsNorm(x, weight: w, epsilon: Self.epsilon, into: Tensor(zeros: [rows, columns]), reciprocalRMS: rrms)
        let dx = Tensor(zeros: [rows, columns]), dw = Tensor(zeros: [columns])
        rmsNormBackward(dy, x: x, weight: w, reciprocalRMS: rrms, epsilon: Self.epsilon, dX: dx, dWeight: dw)

        let xs = x.scalars.map(Double.init), ws = w.scalars.map(Double.init), dys = dy.scalars.map(Double.init)
        let expected = Self.naiveBackward(dys, xs, ws, rows: rows, columns: columns, epsilon: Double(Self.epsilon))
        let r = Self.naiveForward(xs, ws, rows: rows, columns: columns, epsilon: Double(Self.epsilon)).r
        // First-order worst cases, relative to the magnitudes involved (u = 2⁻²⁴):
        // dx_i = r·dy·w − (r³/C)·x·Σ dy·w·x, where r errs by ≤ (C/64 + 19)·u (see
        // the forward test) and enters cubed, and the C-term dot product of mixed
        // signs errs by ≤ (C/16 + 32)·u of Σ|dy·w·x|: (C/8 + 100)·u covers both.
        // dW sums N rows along one chain per chunk, then the chunks: (N + 8)·u,
        // plus r's error.
        let ulp = 0x1p-24
        for n in 0..<rows {
            var absoluteDot = 0.0
            for c in 0..<columns { absoluteDot += abs(dys[n * columns + c] * ws[c] * xs[n * columns + c]) }
            for c in 0..<columns {
                let i = n * columns + c
                let scale = r[n] * abs(dys[i] * ws[c]) + pow(r[n], 3) / Double(columns) * abs(xs[i]) * absoluteDot
                let tolerance = Double(columns / 8 + 100) * ulp * scale
                #expect(abs(Double(dx.pointer[i]) - expected.dx[i]) <= tolerance,
                        "dx[\(n), \(c)] = \(dx.pointer[i]), expected \(expected.dx[i])")
            }
        }
        for c in 0..<columns {
            var scale = 0.0
            for n in 0..<rows { scale += abs(dys[n * columns + c] * xs[n * columns + c] * r[n]) }
            let tolerance = Double(rows + columns / 64 + 30) * ulp * scale + 1e-30
            #expect(abs(Double(dw.pointer[c]) - expected.dw[c]) <= tolerance,
                    "dW[\(c)] = \(dw.pointer[c]), expected \(expected.dw[c])")
        }
    }

    @Test func backwardMatchesCentralDifferencesOfTheDoubleForward() {
        var generator = TestRandom(seed: 6)
        let (rows, columns) = (4, 21)
        let x = generator.values(rows * columns), w = generator.values(columns)
        let dy = generator.values(rows * columns)
        var dx = [Float](repeating: 0, count: x.count), dw = [Float](repeating: 0, count: columns)
        rmsNormBackward(dY: dy, x: x, weight: w, reciprocalRMS: nil, dX: &dx, dWeight: &dw,
                        rows: rows, columns: columns, epsilon: Self.epsilon)

        let xd = x.map(Double.init), wd = w.map(Double.init), eps = Double(Self.epsilon)
        func loss(_ x: [Double], _ w: [Double]) -> Double {
            zip(dy, Self.naiveForward(x, w, rows: rows, columns: columns, epsilon: eps).y).reduce(0) { $0 + Double($1.0) * $1.1 }
        }
        let h = 1e-5
        let dxScale = dx.map { abs($0) }.max()!, dwScale = dw.map { abs($0) }.max()!
        // The kernel works in Float: 10⁻⁵ of the largest gradient is ~100 Float ulps.
        for i in 0..<x.count {
            var plus = xd, minus = xd
            plus[i] += h
            minus[i] -= h
            let numeric = (loss(plus, wd) - loss(minus, wd)) / (2 * h)
            #expect(abs(Double(dx[i]) - numeric) <= 1e-5 * Double(dxScale), "dx[\(i)]: \(dx[i]) vs \(numeric)")
        }
        for c in 0..<columns {
            var plus = wd, minus = wd
            plus[c] += h
            minus[c] -= h
            let numeric = (loss(xd, plus) - loss(xd, minus)) / (2 * h)
            #expect(abs(Double(dw[c]) - numeric) <= 1e-5 * Double(dwScale), "dW[\(c)]: \(dw[c]) vs \(numeric)")
        }
    }

    @Test func backwardAccumulatesIntoTheGradientsItIsGiven() {
        var generator = TestRandom(seed: 7)
        let (rows, columns) = (64, 1031)  // large enough for the partial-sum path
        #expect(rows / rmsNormMinimumRows(columns: columns) >= 2)
        let x = Tensor(shape: [rows, columns], values: generator.values(rows * columns))
        let w = Tensor(shape: [columns], values: generator.values(columns))
        let dy = Tensor(shape: [rows, columns], values: generator.values(rows * columns))
        let freshX = Tensor(zeros: [rows, columns]), freshW = Tensor(zeros: [columns])
        rmsNormBackward(dy, x: x, weight: w, reciprocalRMS: nil, epsilon: Self.epsilon, dX: freshX, dWeight: freshW)

        let priorX = generator.values(rows * columns), priorW = generator.values(columns)
        let dx = Tensor(shape: [rows, columns], values: priorX), dw = Tensor(shape: [columns], values: priorW)
        rmsNormBackward(dy, x: x, weight: w, reciprocalRMS: nil, epsilon: Self.epsilon, dX: dx, dWeight: dw)
        // Each result is one Float addition of prior and fresh gradient.
        for i in 0..<dx.count { #expect(dx.pointer[i] == priorX[i] + freshX.pointer[i]) }
        for c in 0..<columns { #expect(dw.pointer[c] == priorW[c] + freshW.pointer[c]) }
    }

    @Test func savedAndRecomputedReciprocalRMSGiveTheSameGradient() {
        var generator = TestRandom(seed: 8)
        let (rows, columns) = (9, 70)
        let x = Tensor(shape: [rows, columns], values: generator.values(rows * columns))
        let w = Tensor(shape: [columns], values: generator.values(columns))
        let dy = Tensor(shape: [rows, columns], values: generator.values(rows * columns))
        let rrms = Tensor(zeros: [rows])
        rmsNorm(x, weight: w, epsilon: Self.epsilon, into: Tensor(zeros: [rows, columns]), reciprocalRMS: rrms)
        let (dx1, dw1) = (Tensor(zeros: [rows, columns]), Tensor(zeros: [columns]))
        let (dx2, dw2) = (Tensor(zeros: [rows, columns]), Tensor(zeros: [columns]))
        rmsNormBackward(dy, x: x, weight: w, reciprocalRMS: rrms, epsilon: Self.epsilon, dX: dx1, dWeight: dw1)
        rmsNormBackward(dy, x: x, weight: w, reciprocalRMS: nil, epsilon: Self.epsilon, dX: dx2, dWeight: dw2)
        #expect(dx1.scalars == dx2.scalars)
        #expect(dw1.scalars == dw2.scalars)
    }

    @Test func parallelBackwardIsDeterministicAndMatchesItsSerialRun() {
        var generator = TestRandom(seed: 9)
        let (rows, columns) = (300, 257)
        #expect(rows / rmsNormMinimumRows(columns: columns) >= 2)
        let x = Tensor(shape: [rows, columns], values: generator.values(rows * columns))
        let w = Tensor(shape: [columns], values: generator.values(columns))
        let dy = Tensor(shape: [rows, columns], values: generator.values(rows * columns))
        func run() -> (dx: [Float], dw: [Float]) {
            let dx = Tensor(zeros: [rows, columns]), dw = Tensor(zeros: [columns])
            rmsNormBackward(dy, x: x, weight: w, reciprocalRMS: nil, epsilon: Self.epsilon, dX: dx, dWeight: dw)
            return (dx.scalars, dw.scalars)
        }
        let first = run(), second = run()
        #expect(first.dx == second.dx)
        #expect(first.dw == second.dw)
        // Inside a pool loop of two chunks the pool is busy, so the kernel's own
        // loop runs serially on its thread: same chunks, same partial sums, same bits.
        var nested: (dx: [Float], dw: [Float]) = ([], [])
        WorkerPool.shared.parallelFor(2) { range in
            if range.contains(0) { nested = run() }
        }
        #expect(nested.dx == first.dx)
        #expect(nested.dw == first.dw)
    }
}
