import Testing
@testable import Compression

@Suite struct SparsityAllocationTests {
    @Test func bandFollowsTheReferenceUpTo70PercentAndGrowsAbove() {
        let cases: [(Double, Double)] = [(0, 0.01), (0.3416, 0.01), (0.5, 0.01), (0.5000001, 0.02), (0.6, 0.02),
                                         (0.65, 0.03), (0.7, 0.03), (0.75, 0.04), (0.8, 0.04), (0.9, 0.05), (0.99, 0.05)]
        for (s, δ) in cases { #expect(SparsityAllocation.band(sparsity: s) == δ, "δ(\(s))") }
    }

    /// The optimum over the vertices of {x : lower ≤ x_l ≤ upper, Σx = L·s}: every vertex has at most
    /// one coordinate strictly inside the bounds, so enumerating (free coordinate, others at a bound)
    /// covers them all.
    static func bruteForce(target s: Double, importance: [Double], lower: Double, upper: Double) -> (objective: Double, x: [Double]) {
        let count = importance.count
        var best = (objective: Double.infinity, x: [Double]())
        for free in 0..<count {
            for bits in 0..<(1 << (count - 1)) {
                var x = [Double](repeating: 0, count: count)
                var others = 0.0, bit = 0
                for l in 0..<count where l != free {
                    x[l] = bits & (1 << bit) != 0 ? upper : lower
                    others += x[l]
                    bit += 1
                }
                x[free] = Double(count) * s - others
                guard x[free] >= lower - 1e-12, x[free] <= upper + 1e-12 else { continue }
                let objective = zip(x, importance).reduce(0) { $0 + $1.0 * $1.1 }
                if objective < best.objective { best = (objective, x) }
            }
        }
        return best
    }

    /// 400 random cases, L = 1…6, s in [0, 0.97), distinct importances in (1/e, 1]: the greedy answer is the
    /// brute-force optimum (same vector to 1e-12), the mean is the target to 1e-12, the bounds hold
    /// and at most one layer sits strictly between them. Measured: worst |mean − s| 2.2e-16,
    /// worst |x − x_brute| 6.7e-16.
    @Test func greedyEqualsTheBruteForceOptimum() {
        var random = MathTestRandom(seed: 42)
        var worstMean = 0.0, worstVector = 0.0
        for _ in 0..<400 {
            let count = 1 + random.below(6)
            let s = random.unit() * 0.97
            // exp(−β·u) with u a normalised redundancy share (β = 1): comparable magnitudes, so distinct
            // vertices differ in objective by far more than its rounding.
            let importance = (0..<count).map { _ in Foundation.exp(-random.unit()) }
            let x = SparsityAllocation.allocate(target: s, importance: importance)
            let (lower, upper) = SparsityAllocation.bounds(target: s, band: SparsityAllocation.band(sparsity: s))
            #expect(lower >= 0 && upper < 1 && lower <= s && s <= upper)
            #expect(x.allSatisfy { $0 >= lower && $0 <= upper }, "x \(x) outside [\(lower), \(upper)]")
            #expect(x.filter { $0 > lower && $0 < upper }.count <= 1, "x \(x)")
            let mean = x.reduce(0, +) / Double(count)
            worstMean = max(worstMean, abs(mean - s))
            let best = Self.bruteForce(target: s, importance: importance, lower: lower, upper: upper)
            let objective = zip(x, importance).reduce(0) { $0 + $1.0 * $1.1 }
            #expect(objective <= best.objective + 1e-12)
            worstVector = max(worstVector, zip(x, best.x).map { abs($0 - $1) }.max()!)
        }
        #expect(worstMean < 1e-12)
        #expect(worstVector < 1e-12)
    }

    @Test func leastImportantLayersGetTheMostSparsity() {
        // L = 4, s = 0.5, δ = 0.01: total 2.0; layer 1 (least important) up, layer 2 (most) down, and
        // the remainder between them.
        let x = SparsityAllocation.allocate(target: 0.5, importance: [0.5, 0.1, 0.9, 0.3])
        #expect(abs(x[1] - 0.51) < 1e-15 && abs(x[3] - 0.51) < 1e-15 && abs(x[2] - 0.49) < 1e-15)
        #expect(abs(x[0] - 0.49) < 1e-15)
        // Odd L: the middle layer takes the remainder exactly.
        let odd = SparsityAllocation.allocate(target: 0.7, importance: [3, 1, 2])
        #expect(abs(odd[1] - 0.73) < 1e-15 && abs(odd[2] - 0.7) < 1e-15 && abs(odd[0] - 0.67) < 1e-15)
    }

    @Test func exactTiesShareEquallyAndDoNotDependOnLayerOrder() {
        #expect(SparsityAllocation.allocate(target: 0.6, importance: [2, 2, 2, 2]) == [0.6, 0.6, 0.6, 0.6])
        // Two layers (CKA is symmetric, so their redundancies always tie): both at the target.
        #expect(SparsityAllocation.allocate(target: 0.5, importance: [0.7, 0.7]) == [0.5, 0.5])
        let x = SparsityAllocation.allocate(target: 0.5, importance: [1, 2, 2, 3])
        #expect(abs(x[0] - 0.51) < 1e-15 && abs(x[1] - 0.5) < 1e-15 && x[1] == x[2] && abs(x[3] - 0.49) < 1e-15)
        let permuted = SparsityAllocation.allocate(target: 0.5, importance: [2, 3, 1, 2])
        #expect(permuted == [x[1], x[3], x[0], x[2]])
    }

    @Test func boundsAreClampedIntoTheUnitInterval() {
        // s = 0.97, δ = 0.05: the upper bound is half-way to 1 (0.985), never a fully pruned layer.
        let high = SparsityAllocation.allocate(target: 0.97, importance: [1, 2, 3, 4])
        #expect(high.allSatisfy { $0 < 1 } && abs(high.reduce(0, +) / 4 - 0.97) < 1e-12)
        #expect(abs(high[0] - 0.985) < 1e-15)
        // s = 0.005, δ = 0.01: the lower bound is 0.
        let low = SparsityAllocation.allocate(target: 0.005, importance: [1, 2])
        #expect(low == [0.01, 0])
        #expect(SparsityAllocation.allocate(target: 0, importance: [1, 2, 3]) == [0, 0, 0])
        #expect(SparsityAllocation.uniform(target: 0.3, layerCount: 3) == [0.3, 0.3, 0.3])
    }

    @Test func betaDoesNotChangeTheAllocation() {
        let redundancy = [0.1, 0.3, 0.25, 0.35]
        let wanda = SparsityAllocation.allocate(target: 0.6, importance: LayerSimilarity.importance(redundancy: redundancy, beta: 1))
        let sparseGPT = SparsityAllocation.allocate(target: 0.6, importance: LayerSimilarity.importance(redundancy: redundancy, beta: 100))
        #expect(wanda == sparseGPT)
    }
}

import Foundation
