import Foundation
import Kernels

/// How close one model stays to another on the same windows of a token stream:
/// the mean per-token KL divergence KL(P_reference ‖ P_other) and the share of
/// positions whose most probable next token is the same.
///
/// Windows are cut as for perplexity (non-overlapping, the tail dropped) and the
/// same T − 1 predicting rows per window are compared. Both models' logits exist
/// only `chunkRows` rows at a time; sums are kept in Double.
///
/// Shapes: windows [B][T]; hidden [B·T, C] per model; scratch [chunkRows, V] per model.
public struct ModelComparison: Sendable, Equatable {
    /// Mean over compared positions of Σ_v p_ref(v) · (log p_ref(v) − log p_other(v)), in nats.
    public let meanKL: Double
    /// Share of compared positions where both models' argmax agree.
    public let topOneAgreement: Double
    /// Positions compared: windows × (windowLength − 1).
    public let comparedTokens: Int
    public let windows: Int
}

extension Decoder {
    /// Compares this (reference) model with `other` on `stream` in non-overlapping windows of `windowLength`.
    public func compare(with other: Decoder, on stream: [Int32], windowLength: Int, batch: Int = 1,
                        chunkRows: Int = 256) throws -> ModelComparison {
        precondition(windowLength >= 2 && batch >= 1 && chunkRows >= 1,
                     "compare: window \(windowLength), batch \(batch), chunks of \(chunkRows)")
        precondition(other.config.vocabSize == config.vocabSize,
                     "compare: vocabularies of \(config.vocabSize) and \(other.config.vocabSize) tokens")
        let windowCount = stream.count / windowLength
        guard windowCount >= 1 else {
            throw TransformerError.streamTooShort(tokens: stream.count, windowLength: windowLength)
        }
        let v = config.vocabSize
        let ours = makeWorkspace(batch: min(batch, windowCount), tokens: windowLength)
        let theirs = other.makeWorkspace(batch: ours.batchCapacity, tokens: windowLength)
        let rowsPerChunk = min(chunkRows, ours.batchCapacity * windowLength)
        let scratch = Tensor(zeros: [2, rowsPerChunk, v])
        var totalKL = 0.0, agreements = 0, compared = 0
        var first = 0
        while first < windowCount {
            let count = min(ours.batchCapacity, windowCount - first)
            let windows = (first..<first + count).map { w in Array(stream[(w * windowLength)..<((w + 1) * windowLength)]) }
            let hidden = forward(windows, workspace: ours)
            let otherHidden = other.forward(windows, workspace: theirs)
            var row = 0
            while row < count * windowLength {
                let rows = min(rowsPerChunk, count * windowLength - row)
                let p = scratch[0].slice(0..<rows), q = scratch[1].slice(0..<rows)
                head(hidden.slice(row..<(row + rows)), into: p, scratch: ours.matmulScratch)
                other.head(otherHidden.slice(row..<(row + rows)), into: q, scratch: theirs.matmulScratch)
                // The last row of each window predicts nothing inside it, as in perplexity.
                let scored = (row..<(row + rows)).filter { ($0 + 1) % windowLength != 0 }.map { $0 - row }
                var kl = [Double](repeating: 0, count: scored.count), agree = [Bool](repeating: false, count: scored.count)
                kl.withUnsafeMutableBufferPointer { kl in
                    agree.withUnsafeMutableBufferPointer { agree in
                        WorkerPool.shared.parallelFor(scored.count) { range in
                            for i in range {
                                let r = scored[i]
                                (kl[i], agree[i]) = Self.divergence(p.pointer + r * v, q.pointer + r * v, count: v)
                            }
                        }
                    }
                }
                totalKL += kl.reduce(0, +)
                agreements += agree.count { $0 }
                compared += scored.count
                row += rows
            }
            first += count
        }
        return ModelComparison(meanKL: totalKL / Double(compared), topOneAgreement: Double(agreements) / Double(compared),
                               comparedTokens: compared, windows: windowCount)
    }

    /// KL(softmax(a) ‖ softmax(b)) in Double and whether both rows' first argmax agree.   a, b [V]
    static func divergence(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> (Double, Bool) {
        var argmaxA = 0, argmaxB = 0
        for i in 1..<count {
            if a[i] > a[argmaxA] { argmaxA = i }
            if b[i] > b[argmaxB] { argmaxB = i }
        }
        let maxA = Double(a[argmaxA]), maxB = Double(b[argmaxB])
        var sumA = 0.0, sumB = 0.0, weighted = 0.0
        for i in 0..<count {
            let ea = exp(Double(a[i]) - maxA)
            sumA += ea
            sumB += exp(Double(b[i]) - maxB)
            weighted += ea * (Double(a[i]) - Double(b[i]))
        }
        // Σ p_a (log p_a − log p_b) = E_pa[a − b] − (maxA + log sumA) + (maxB + log sumB).
        let kl = weighted / sumA - (maxA + log(sumA)) + (maxB + log(sumB))
        return (max(kl, 0), argmaxA == argmaxB)
    }
}
