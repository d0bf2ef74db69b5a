import Foundation
import Testing
@testable import Kernels

/// Cross-entropy targets: ids in 0..<vocabulary, with about one row in `ignoreEvery` set to −1 (ignored).
private extension TestRandom {
    mutating func targets(_ rows: Int, vocabulary: Int, ignoreEvery: Int = 4) -> [Int32] {
        (0..<rows).map { _ in below(ignoreEvery) == 0 ? -1 : Int32(below(vocabulary)) }
    }
}

/// −log softmax(logits)[target] in Double.
private func naiveNLL(_ logits: [Double], target: Int) -> Double {
    let maximum = logits.max()!
    let logSum = log(logits.reduce(0) { $0 + exp($1 - maximum) }) + maximum
    return logSum - logits[target]
}

/// Mean NLL over rows with a target ≥ 0, in Double (0 when there are none).
private func naiveMeanLoss(_ logits: [[Double]], _ targets: [Int32]) -> Double {
    var total = 0.0, count = 0
    for (row, target) in zip(logits, targets) where target >= 0 {
        total += naiveNLL(row, target: Int(target))
        count += 1
    }
    return count == 0 ? 0 : total / Double(count)
}

/// The rows of an [N, V] tensor, in Double.
private func rows(_ t: Tensor) -> [[Double]] {
    (0..<t.rowCount).map { r in (0..<t.rowLength).map { Double(t.pointer[r * t.rowLength + $0]) } }
}

/// logits = hidden · weightᵀ for one row, in Double.   hidden: [C]; weight: [V, C]
private func naiveLogits(_ hidden: [Double], _ weight: [[Double]]) -> [Double] {
    weight.map { w in zip(hidden, w).reduce(0) { $0 + $1.0 * $1.1 } }
}

@Suite struct CrossEntropyTests {
    @Test("cross-entropy equals a double-precision log-softmax and skips rows whose target is negative")
    func lossMatchesReference() {
        var numbers = TestRandom(seed: 31)
        // Odd shapes, and (64, 1000), which is split over the worker pool.
        for (n, v) in [(1, 1), (1, 5), (9, 37), (16, 100), (64, 1000)] {
            let logits = numbers.tensor([n, v], -6, 6)
            var targets = numbers.targets(n, vocabulary: v)
            if !targets.contains(where: { $0 >= 0 }) { targets[0] = 0 }
            let perRow = Tensor(shape: [n], repeating: 99)
            let loss = crossEntropy(logits: logits, targets: targets, lossPerRow: perRow)
            let logitRows = rows(logits)
            let want = naiveMeanLoss(logitRows, targets)
            #expect(abs(loss - want) <= 1e-6 * max(1, abs(want)), "\(n)×\(v): loss \(loss), want \(want)")
            var worst = 0.0
            for (r, target) in targets.enumerated() {
                let wantRow = target < 0 ? 0 : naiveNLL(logitRows[r], target: Int(target))
                worst = max(worst, relativeError(perRow.pointer[r], wantRow))
            }
            #expect(worst <= 1e-6, "\(n)×\(v): worst per-row NLL error \(worst)")
        }
    }

    @Test("the logits gradient matches finite differences of the mean loss, in place too")
    func gradientMatchesFiniteDifferences() {
        var numbers = TestRandom(seed: 32)
        for (n, v, sampled) in [(1, 1, false), (3, 5, false), (9, 37, false), (64, 1000, true)] {
            let logits = numbers.tensor([n, v], -5, 5)
            var targets = numbers.targets(n, vocabulary: v)
            if !targets.contains(where: { $0 >= 0 }) { targets[0] = Int32(v - 1) }
            // Stale values: the gradient is written, not accumulated.
            let dLogits = Tensor(shape: [n, v], repeating: 5)
            _ = crossEntropy(logits: logits, targets: targets, dLogits: dLogits)
            let base = rows(logits)
            let scored = Double(targets.filter { $0 >= 0 }.count)
            let entries = sampled ? (0..<300).map { _ in numbers.below(n * v) } : Array(0..<n * v)
            var worst = 0.0
            for index in entries {
                let (r, c) = (index / v, index % v)
                // Only row r's term of the mean depends on logits[r, c].
                var want = 0.0
                if targets[r] >= 0 {
                    let target = Int(targets[r])
                    want = centralDifference(of: { naiveNLL($0, target: target) }, at: base[r], index: c) / scored
                }
                worst = max(worst, abs(Double(dLogits.pointer[index]) - want))
            }
            // The gradient is at most 1/M in size; allow 1e-6 of that scale.
            #expect(worst <= 1e-6 / scored, "\(n)×\(v): worst error \(worst)")

            let inPlace = logits.copy()
            let inPlaceLoss = crossEntropy(logits: inPlace, targets: targets, dLogits: inPlace)
            #expect(inPlace.scalars == dLogits.scalars, "\(n)×\(v): in-place gradient differs")
            #expect(inPlaceLoss == crossEntropy(logits: logits, targets: targets), "\(n)×\(v): in-place loss differs")
        }
    }

    @Test("cross-entropy stays finite for huge logits and is 0 with zero gradient when every row is ignored")
    func extremes() {
        let logits = Tensor(shape: [3, 4], values: [1e30, -1e30, 0, 5,
                                                    1000, 999, 998, -1000,
                                                    -500, -501, -502, -503])
        let dLogits = Tensor(zeros: [3, 4])
        let loss = crossEntropy(logits: logits, targets: [1, 0, 3], dLogits: dLogits)
        let want = naiveMeanLoss(rows(logits), [1, 0, 3])
        #expect(abs(loss - want) <= 1e-6 * want, "loss \(loss), want \(want)")
        let allFinite = dLogits.scalars.allSatisfy(\.isFinite)
        #expect(allFinite)

        let stale = Tensor(shape: [3, 4], repeating: 5)
        let perRow = Tensor(shape: [3], repeating: 5)
        #expect(crossEntropy(logits: logits, targets: [-1, -1, -7], dLogits: stale, lossPerRow: perRow) == 0)
        #expect(stale.scalars == [Float](repeating: 0, count: 12))
        #expect(perRow.scalars == [0, 0, 0])
    }

    @Test("chunked cross-entropy equals the unchunked and naive ones for chunk sizes that do not divide N")
    func chunkedMatchesUnchunked() {
        var numbers = TestRandom(seed: 33)
        let (n, c, v) = (37, 24, 203)
        let hidden = numbers.tensor([n, c]), weight = numbers.tensor([v, c], -0.5, 0.5)
        let targets = numbers.targets(n, vocabulary: v)

        // Unchunked: full logits, crossEntropy, then dHidden = dLogits · weight.
        let logits = matmul(hidden, weight, transposeB: true)
        let dLogits = Tensor(zeros: [n, v])
        let fullPerRow = Tensor(zeros: [n])
        let fullLoss = crossEntropy(logits: logits, targets: targets, dLogits: dLogits, lossPerRow: fullPerRow)
        let fullDHidden = matmul(dLogits, weight)

        let weightRows = rows(weight)
        let naiveLoss = naiveMeanLoss(rows(hidden).map { naiveLogits($0, weightRows) }, targets)
        #expect(abs(fullLoss - naiveLoss) <= 1e-6 * naiveLoss, "unchunked \(fullLoss), naive \(naiveLoss)")

        for chunkRows in [1, 5, 8, 36, 37, 100] {
            let start = numbers.tensor([n, c])
            let dHidden = start.copy()
            let perRow = Tensor(zeros: [n])
            let loss = chunkedCrossEntropy(hidden: hidden, weight: weight, targets: targets, chunkRows: chunkRows,
                                           dHidden: dHidden, lossPerRow: perRow)
            #expect(abs(loss - fullLoss) <= 1e-6 * fullLoss, "chunks of \(chunkRows): \(loss), unchunked \(fullLoss)")
            #expect(abs(loss - naiveLoss) <= 1e-6 * naiveLoss, "chunks of \(chunkRows): \(loss), naive \(naiveLoss)")
            var worstRow = 0.0, worstGradient = 0.0
            for r in 0..<n {
                worstRow = max(worstRow, relativeError(perRow.pointer[r], Double(fullPerRow.pointer[r])))
            }
            for i in 0..<n * c {
                // dHidden accumulated onto `start`.
                let want = Double(start.pointer[i]) + Double(fullDHidden.pointer[i])
                worstGradient = max(worstGradient, relativeError(dHidden.pointer[i], want))
            }
            #expect(worstRow <= 1e-6, "chunks of \(chunkRows): worst per-row NLL difference \(worstRow)")
            #expect(worstGradient <= 1e-6, "chunks of \(chunkRows): worst dHidden difference \(worstGradient)")
        }
    }

    @Test("chunked dHidden matches finite differences of the naive loss through the LM head")
    func chunkedGradientMatchesFiniteDifferences() {
        var numbers = TestRandom(seed: 34)
        let (n, c, v) = (13, 10, 57)
        let hidden = numbers.tensor([n, c]), weight = numbers.tensor([v, c], -0.5, 0.5)
        let targets = numbers.targets(n, vocabulary: v, ignoreEvery: 3)
        let scored = Double(targets.filter { $0 >= 0 }.count)
        let dHidden = Tensor(zeros: [n, c])
        _ = chunkedCrossEntropy(hidden: hidden, weight: weight, targets: targets, chunkRows: 4, dHidden: dHidden)

        let hiddenRows = rows(hidden), weightRows = rows(weight)
        var worst = 0.0
        for r in 0..<n {
            for k in 0..<c {
                // Only row r's term of the mean depends on hidden[r, k].
                let want: Double
                if targets[r] < 0 {
                    want = 0
                } else {
                    let target = Int(targets[r])
                    want = centralDifference(of: { naiveNLL(naiveLogits($0, weightRows), target: target) },
                                             at: hiddenRows[r], index: k) / scored
                }
                worst = max(worst, abs(Double(dHidden.pointer[r * c + k]) - want))
            }
        }
        // |dHidden| is at most about Σ|w|/M; allow 1e-6 relative to 1/M.
        #expect(worst <= 1e-6 / scored, "worst dHidden error \(worst)")
    }

    @Test("chunked cross-entropy without dHidden gives the same loss, and a wholly ignored chunk adds nothing")
    func chunkedForwardOnly() {
        var numbers = TestRandom(seed: 35)
        let (n, c, v) = (20, 16, 300)
        let hidden = numbers.tensor([n, c]), weight = numbers.tensor([v, c], -0.5, 0.5)
        var targets = numbers.targets(n, vocabulary: v)
        for r in 5..<10 { targets[r] = -1 }
        let dHidden = numbers.tensor([n, c])
        let before = dHidden.scalars
        let training = chunkedCrossEntropy(hidden: hidden, weight: weight, targets: targets, chunkRows: 5, dHidden: dHidden)
        let evaluation = chunkedCrossEntropy(hidden: hidden, weight: weight, targets: targets, chunkRows: 5)
        #expect(training == evaluation)
        let untouchedRows = (5 * c..<10 * c).filter { dHidden.pointer[$0] != before[$0] }
        #expect(untouchedRows.isEmpty, "ignored rows' dHidden changed at \(untouchedRows.prefix(5))")
        let changed = (0..<5 * c).filter { dHidden.pointer[$0] != before[$0] }
        #expect(!changed.isEmpty, "scored rows got no gradient")
    }
}
