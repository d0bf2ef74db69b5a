import Foundation
import Testing
@testable import Kernels

/// Naive softmax of one row in Double.
private func naiveSoftmax(_ row: [Double]) -> [Double] {
    guard let maximum = row.max() else { return [] }
    let exps = row.map { exp($0 - maximum) }
    let sum = exps.reduce(0, +)
    return exps.map { $0 / sum }
}

/// Row `index` of an [N, V] tensor, in Double.
private func row(_ t: Tensor, _ index: Int, length: Int, columns: Int) -> [Double] {
    (0..<length).map { Double(t.pointer[index * columns + $0]) }
}

/// The scalar loss L = Σ dY · softmax(x) of one row, whose gradient the backward computes.
private func rowLoss(_ x: [Double], _ dY: [Double]) -> Double {
    zip(naiveSoftmax(x), dY).reduce(0) { $0 + $1.0 * $1.1 }
}

/// ∂(Σ dY · softmax(x))/∂x_k by central differences in Double.
private func finiteDifferenceGradient(_ x: [Double], _ dY: [Double], at k: Int) -> Double {
    centralDifference(of: { rowLoss($0, dY) }, at: x, index: k)
}

/// Checks `y` [rows, visible…] against the naive softmax of each row's first `visible(row)` entries,
/// and that the rest is exactly 0; returns the worst relative error and the worst |row sum − 1|.
private func compareWithReference(x: Tensor, y: Tensor, rows: Int, columns: Int,
                                  visible: (Int) -> Int) -> (relative: Double, sum: Double, nonzeroMasked: Int) {
    var worst = 0.0, worstSum = 0.0, nonzeroMasked = 0
    for r in 0..<rows {
        let count = visible(r)
        let want = naiveSoftmax(row(x, r, length: count, columns: columns))
        var sum = 0.0
        for c in 0..<count {
            let got = Double(y.pointer[r * columns + c])
            sum += got
            worst = max(worst, abs(got - want[c]) / max(want[c], 1e-30))
        }
        worstSum = max(worstSum, abs(sum - 1))
        for c in count..<columns where y.pointer[r * columns + c] != 0 || y.pointer[r * columns + c].sign == .minus {
            nonzeroMasked += 1
        }
    }
    return (worst, worstSum, nonzeroMasked)
}

@Suite struct SoftmaxTests {
    @Test("softmax rows sum to one and match a double-precision reference within 1e-6 relative")
    func softmaxMatchesReference() {
        var numbers = TestRandom(seed: 21)
        // (1, 1) and odd widths exercise the scalar tails; (64, 1000) is split over the worker pool.
        for (rows, columns) in [(1, 1), (3, 17), (5, 100), (2, 1024), (64, 1000)] {
            let x = numbers.tensor([rows, columns], -8, 8)
            let y = softmax(x)
            let result = compareWithReference(x: x, y: y, rows: rows, columns: columns) { _ in columns }
            // exp's 8e-8, the Double sum and one rounding each for 1/sum and the product.
            #expect(result.relative <= 1e-6, "\(rows)×\(columns): worst relative error \(result.relative)")
            #expect(result.sum <= 1e-6, "\(rows)×\(columns): worst row sum error \(result.sum)")

            let inPlace = x.copy()
            softmax(inPlace, into: inPlace)
            #expect(inPlace.scalars == y.scalars, "in place, \(rows)×\(columns)")
        }
    }

    @Test("softmax is stable for huge logits and gives zeros for a row that is all −inf")
    func softmaxExtremes() {
        let rows: [[Float]] = [
            [1e30, 1e30, -1e30, 0],
            [1000, 999, 998, -1000],
            [-1000, -1001, -1002, -1003],
            [89, 100, 88.5, -104],
            [-.infinity, 0, -.infinity, 1],
            [-.infinity, -.infinity, -.infinity, -.infinity],
        ]
        let x = Tensor(shape: [rows.count, 4], values: rows.flatMap { $0 })
        let y = softmax(x)
        for (r, values) in rows.enumerated() {
            let finite = values.contains { $0 != -.infinity }
            let want = finite ? naiveSoftmax(values.map(Double.init)) : [0, 0, 0, 0]
            for c in 0..<4 {
                let got = Double(y.pointer[r * 4 + c])
                #expect(got.isFinite && abs(got - want[c]) <= 1e-6 * want[c] + 1e-38,
                        "row \(values): y[\(c)] = \(got), want \(want[c])")
            }
        }
    }

    @Test("softmax backward matches finite differences of Σ dY · softmax(x) and accumulates")
    func softmaxBackwardMatchesFiniteDifferences() {
        var numbers = TestRandom(seed: 22)
        for (rows, columns, sampled) in [(1, 1, false), (3, 17, false), (4, 33, false), (64, 1000, true)] {
            let x = numbers.tensor([rows, columns], -4, 4), dY = numbers.tensor([rows, columns])
            let dX = numbers.tensor([rows, columns])
            let dX0 = dX.scalars
            let y = softmax(x)
            softmaxBackward(dY, y: y, dX: dX)
            // Every entry of the small cases; 200 random entries of the large one.
            let entries = sampled ? (0..<200).map { _ in numbers.below(rows * columns) } : Array(0..<rows * columns)
            var worst = 0.0
            for index in entries {
                let (r, c) = (index / columns, index % columns)
                let gradient = finiteDifferenceGradient(row(x, r, length: columns, columns: columns),
                                                        row(dY, r, length: columns, columns: columns), at: c)
                let want = Double(dX0[index]) + gradient
                worst = max(worst, relativeError(dX.pointer[index], want))
            }
            #expect(worst <= 1e-6, "\(rows)×\(columns): worst error \(worst)")
        }
    }

    @Test("causal softmax matches the reference over visible keys and writes exactly 0 over masked ones")
    func causalSoftmaxMatchesReference() {
        var numbers = TestRandom(seed: 23)
        // (matrices, queries, offset): prefill, a block after a cache, one decoding step, and a size split over the pool.
        for (matrices, queries, offset) in [(1, 1, 0), (2, 5, 0), (3, 7, 4), (2, 1, 30), (8, 128, 0)] {
            let keys = queries + offset
            let x = numbers.tensor([matrices, queries, keys], -6, 6)
            // A stale value in the output must not survive in the masked part.
            let y = Tensor(shape: [matrices, queries, keys], repeating: 7)
            causalSoftmax(x, offset: offset, into: y)
            let result = compareWithReference(x: x.reshaped([matrices * queries, keys]), y: y.reshaped([matrices * queries, keys]),
                                              rows: matrices * queries, columns: keys) { row in row % queries + offset + 1 }
            let shape = "\(matrices)×\(queries)×\(keys), offset \(offset)"
            #expect(result.relative <= 1e-6, "\(shape): worst relative error \(result.relative)")
            #expect(result.sum <= 1e-6, "\(shape): worst row sum error \(result.sum)")
            #expect(result.nonzeroMasked == 0, "\(shape): \(result.nonzeroMasked) masked entries are not +0")

            // Independently: a plain softmax of the scores with −inf written over the masked keys.
            let masked = x.copy()
            for m in 0..<matrices {
                for q in 0..<queries {
                    for k in (q + offset + 1)..<max(keys, q + offset + 1) { masked.pointer[(m * queries + q) * keys + k] = -.infinity }
                }
            }
            let plain = softmax(masked)
            var worstDifference = 0.0
            for i in 0..<y.count {
                let (a, b) = (Double(plain.pointer[i]), Double(y.pointer[i]))
                worstDifference = max(worstDifference, a == b ? 0 : abs(a - b) / max(abs(a), 1e-30))
            }
            // Only the grouping of the Float partial sums differs.
            #expect(worstDifference <= 1e-6, "\(shape): differs from softmax with a −inf mask by \(worstDifference)")
        }
    }

    @Test("causal softmax backward matches finite differences and leaves masked gradients untouched")
    func causalSoftmaxBackwardMatchesFiniteDifferences() {
        var numbers = TestRandom(seed: 24)
        for (matrices, queries, offset, sampled) in [(1, 1, 0, false), (2, 5, 0, false), (2, 6, 3, false), (8, 128, 0, true)] {
            let keys = queries + offset
            let shape = [matrices, queries, keys]
            let x = numbers.tensor(shape, -4, 4), dY = numbers.tensor(shape), dX = numbers.tensor(shape)
            let dX0 = dX.scalars
            let y = causalSoftmax(x, offset: offset)
            // Garbage upstream gradient on masked entries must not leak into dX.
            for m in 0..<matrices {
                for q in 0..<queries {
                    for k in (q + offset + 1)..<max(keys, q + offset + 1) { dY.pointer[(m * queries + q) * keys + k] = .nan }
                }
            }
            causalSoftmaxBackward(dY, y: y, offset: offset, dX: dX)
            let entries = sampled ? (0..<200).map { _ in numbers.below(x.count) } : Array(0..<x.count)
            var worst = 0.0, changedMasked = 0
            for index in entries {
                let (r, k) = (index / keys, index % keys)
                let visible = r % queries + offset + 1
                if k >= visible {
                    if dX.pointer[index].bitPattern != dX0[index].bitPattern { changedMasked += 1 }
                    continue
                }
                let gradient = finiteDifferenceGradient(row(x, r, length: visible, columns: keys),
                                                        row(dY, r, length: visible, columns: keys), at: k)
                let want = Double(dX0[index]) + gradient
                worst = max(worst, relativeError(dX.pointer[index], want))
            }
            let description = "\(matrices)×\(queries)×\(keys), offset \(offset)"
            #expect(worst <= 1e-6, "\(description): worst error \(worst)")
            #expect(changedMasked == 0, "\(description): \(changedMasked) masked gradients changed")
        }
    }
}
