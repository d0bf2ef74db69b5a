import CKernels
import Foundation
import Testing
@testable import Kernels

/// The importance-weighted s4 scale search (`ck_sparse_s4_encode_group_weighted`): without weights it is the
/// format's rule byte for byte; with them it never loses to the rule's scale on the weighted error, its nibbles
/// cannot be improved one at a time, and it lowers a sparse product's output error when inputs differ in size.
@Suite struct SparseS4WeightedEncodingTests {
    /// One group's encoding: the scale's bits and the nibble bytes.
    static func encode(_ values: [Float], weights: [Float]?) -> (scale: UInt16, nibbles: [UInt8]) {
        var nibbles = [UInt8](repeating: 0, count: (values.count + 1) / 2)
        let scale = weights.map { ck_sparse_s4_encode_group_weighted(values, $0, Int32(values.count), &nibbles) }
            ?? ck_sparse_s4_encode_group_weighted(values, nil, Int32(values.count), &nibbles)
        return (scale, nibbles)
    }

    /// Σ h (w − scale · level[nibble])² in Double.
    static func weightedError(_ values: [Float], _ weights: [Float], scale: UInt16, nibbles: [UInt8]) -> Double {
        let s = Double(Float(Float16(bitPattern: scale)))
        var e = 0.0
        for (k, w) in values.enumerated() {
            let nibble = k % 2 == 0 ? nibbles[k / 2] & 15 : nibbles[k / 2] >> 4
            let d = Double(w) - s * Double(SparseMatrix.s4Levels[Int(nibble)])
            e += Double(weights[k]) * d * d
        }
        return e
    }

    /// Random groups of 1…64 values (some with outliers) and importances spread over e^±3, some zero.
    static func randomGroups(count: Int, seed: UInt64) -> [(values: [Float], weights: [Float])] {
        var random = TestRandom(seed: seed)
        return (0..<count).map { i in
            let n = 1 + random.below(64)
            var values = random.values(n, -1, 1)
            if i % 3 == 0 { values[random.below(n)] *= 6 }
            let weights = (0..<n).map { _ in random.below(10) == 0 ? 0 : Float(exp(Double(random.uniform(-3, 3)))) }
            return (values, weights)
        }
    }

    @Test func withoutWeightsTheBytesAreTheUnweightedEncodersBitForBit() {
        for (values, weights) in Self.randomGroups(count: 300, seed: 3) {
            var plain = [UInt8](repeating: 0, count: (values.count + 1) / 2)
            let plainScale = ck_sparse_s4_encode_group(values, Int32(values.count), &plain)
            let unweighted = Self.encode(values, weights: nil)
            #expect(unweighted.scale == plainScale && unweighted.nibbles == plain)
            // Weights that carry nothing (all zero) fall back to the same bytes.
            let zero = Self.encode(values, weights: [Float](repeating: 0, count: weights.count))
            #expect(zero.scale == plainScale && zero.nibbles == plain)
        }
    }

    @Test func theWeightedSearchNeverLosesToTheUnweightedScaleOnTheWeightedError() {
        var better = 0
        let groups = Self.randomGroups(count: 400, seed: 7)
        for (values, weights) in groups {
            let plain = Self.encode(values, weights: nil)
            let weighted = Self.encode(values, weights: weights)
            let plainError = Self.weightedError(values, weights, scale: plain.scale, nibbles: plain.nibbles)
            let weightedError = Self.weightedError(values, weights, scale: weighted.scale, nibbles: weighted.nibbles)
            // The search sums in float; the Double re-computation may differ by rounding only.
            #expect(weightedError <= plainError * (1 + 1e-5) + 1e-12, "\(weightedError) > \(plainError) for \(values.count) values")
            if weightedError < plainError * 0.98 { better += 1 }
        }
        // Importances spread over e^±3 should move most groups' scales; a search that ignored them would not.
        #expect(better > groups.count / 2, "weighted error lower by 2% in only \(better) of \(groups.count) groups")
    }

    @Test func noSingleNibbleChangeLowersTheWeightedErrorAtTheChosenScale() {
        // For a diagonal weighting each value's term depends on its own nibble only: the nearest level is optimal.
        for (values, weights) in Self.randomGroups(count: 100, seed: 9) {
            let (scale, nibbles) = Self.encode(values, weights: weights)
            let s = Double(Float(Float16(bitPattern: scale)))
            for (k, w) in values.enumerated() where weights[k] > 0 {
                let nibble = Int(k % 2 == 0 ? nibbles[k / 2] & 15 : nibbles[k / 2] >> 4)
                let chosen = abs(Double(w) - s * Double(SparseMatrix.s4Levels[nibble]))
                let best = SparseMatrix.s4Levels.map { abs(Double(w) - s * Double($0)) }.min()!
                #expect(chosen <= best * (1 + 1e-6) + 1e-12)
            }
        }
    }

    @Test func weightingBySecondMomentsLowersTheOutputErrorOfAWandaPrunedMatrix() {
        // Inputs whose columns differ in size (scales e^±2), weights kept as Wanda keeps them (largest |w| · ‖x_j‖ of
        // each row): ‖(W − Ŵ) Xᵀ‖² over the tokens, Ŵ the s4 decoding with and without the columns' second moments.
        var random = TestRandom(seed: 21)
        let rows = 96, cols = 192, tokens = 256
        var columnScale = [Float](repeating: 0, count: cols)
        for j in 0..<cols { columnScale[j] = Float(exp(Double(random.uniform(-2, 2)))) }
        var x = [Float](repeating: 0, count: tokens * cols)
        for i in 0..<(tokens * cols) { x[i] = random.uniform(-1.7, 1.7) * columnScale[i % cols] }
        var secondMoments = [Float](repeating: 0, count: cols)
        for t in 0..<tokens {
            for j in 0..<cols { secondMoments[j] += x[t * cols + j] * x[t * cols + j] / Float(tokens) }
        }
        let dense = Tensor(zeros: [rows, cols])
        for o in 0..<rows {
            let w = random.values(cols, -1, 1)
            let score: [Float] = (0..<cols).map { abs(w[$0]) * columnScale[$0] }
            let kept = (0..<cols).sorted { score[$0] > score[$1] }.prefix(cols / 2)
            for j in kept { dense.pointer[o * cols + j] = w[j] }
        }
        func outputError(_ decoded: Tensor) -> Double {
            var e = 0.0
            for t in 0..<tokens {
                for o in 0..<rows {
                    var d = 0.0
                    for j in 0..<cols {
                        let difference = dense.pointer[o * cols + j] - decoded.pointer[o * cols + j]
                        d += Double(difference) * Double(x[t * cols + j])
                    }
                    e += d * d
                }
            }
            return e
        }
        let plain = outputError(SparseMatrix.encode(dense, kind: .s4).decode())
        let weighted = outputError(SparseMatrix.encode(dense, kind: .s4, importances: secondMoments).decode())
        print("output error of a Wanda-pruned 96×192 matrix: s4 weighted \(weighted), unweighted \(plain) (\(weighted / plain)×)")
        #expect(weighted < plain * 0.9, "output error weighted \(weighted) against unweighted \(plain)")
    }
}
