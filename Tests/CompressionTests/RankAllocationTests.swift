import Testing
@testable import Compression

@Suite struct RankAllocationTests {
    @Test func ranksAreProportionalToErrorsAndSumExactly() throws {
        // Shares 3.2, 6.4, 9.6, 12.8 of 32 round to 3, 6, 10, 13: already exact.
        #expect(try RankAllocation.allocate(errors: [1, 2, 3, 4], meanRank: 8, maximumRank: 16) == [3, 6, 10, 13])
        // Shares 2.86 (four times) and 8.57 of 20 round to 3, 3, 3, 3, 9 = 21: one rank comes off the
        // smallest error, the tie going to the lower layer.
        #expect(try RankAllocation.allocate(errors: [1, 1, 1, 1, 3], meanRank: 4, maximumRank: 16) == [2, 3, 3, 3, 9])
        // Shares 0.71 (four times) and 2.14 of 5 round to 1, 1, 1, 1, 2 = 6: the layers at rank 1 cannot give, the last does.
        #expect(try RankAllocation.allocate(errors: [1, 1, 1, 1, 3], meanRank: 1, maximumRank: 16) == [1, 1, 1, 1, 1])
    }

    @Test func halvesRoundToEvenAsPythonsRoundDoes() throws {
        // Shares 2.5 and 1.5 of 4 round to 2 and 2 (half up would give 3 and 2, then 3 and 1).
        #expect(try RankAllocation.allocate(errors: [5, 3], meanRank: 2, maximumRank: 16) == [2, 2])
    }

    @Test func clippingIsRepairedFromTheSmallestErrorsUp() throws {
        // One dominant error: shares 0.0…, 0.0…, 23.9 clip to 1, 1, 16 = 18; 6 more go round-robin from the
        // largest error down, skipping the layer at R: 4, 4, 16.
        #expect(try RankAllocation.allocate(errors: [1e-6, 2e-6, 1], meanRank: 8, maximumRank: 16) == [4, 4, 16])
        // Too much: shares 0.3 → 1 each for 9 layers with mean rank 1 and one large: removal starts at the smallest.
        let errors = [1.0, 1, 1, 1, 1, 1, 1, 1, 20]
        let ranks = try RankAllocation.allocate(errors: errors, meanRank: 1, maximumRank: 16)
        #expect(ranks == Array(repeating: 1, count: 9))
    }

    /// Every vector in [1, R]^L summing to r̄·L, for L ≤ 4 and R ≤ 6.
    static func feasibleVectors(count: Int, maximumRank: Int, total: Int) -> [[Int]] {
        var result: [[Int]] = []
        func extend(_ prefix: [Int], _ remaining: Int) {
            if prefix.count == count {
                if remaining == 0 { result.append(prefix) }
                return
            }
            for r in 1...maximumRank where r <= remaining { extend(prefix + [r], remaining - r) }
        }
        extend([], total)
        return result
    }

    /// 300 random cases (L = 1…4, R = 2…6, every reachable mean rank, errors over six orders of
    /// magnitude): the sum is exact, the bounds hold, a larger error never gets fewer ranks, and among
    /// all feasible vectors none is closer to the clipped, rounded proportional shares — neither in total
    /// change (L1) nor in the largest change of one layer (L∞).
    @Test func adjustmentIsTheSmallestAndMostEvenOfAllFeasibleOnes() throws {
        var random = MathTestRandom(seed: 7)
        for _ in 0..<300 {
            let count = 1 + random.below(4), maximumRank = 2 + random.below(5)
            let meanRank = 1 + random.below(maximumRank)
            let errors = (0..<count).map { _ in Foundation.pow(10, -6 * random.unit()) }
            let ranks = try RankAllocation.allocate(errors: errors, meanRank: meanRank, maximumRank: maximumRank)
            let target = meanRank * count
            #expect(ranks.reduce(0, +) == target)
            #expect(ranks.allSatisfy { (1...maximumRank).contains($0) })
            for i in 0..<count { for j in 0..<count where errors[i] < errors[j] { #expect(ranks[i] <= ranks[j], "errors \(errors) ranks \(ranks)") } }
            let total = errors.reduce(0, +)
            let start = errors.map { min(max(Int(($0 / total * Double(target)).rounded(.toNearestOrEven)), 1), maximumRank) }
            func l1(_ r: [Int]) -> Int { zip(r, start).reduce(0) { $0 + abs($1.0 - $1.1) } }
            func lInf(_ r: [Int]) -> Int { zip(r, start).map { abs($0 - $1) }.max()! }
            let feasible = Self.feasibleVectors(count: count, maximumRank: maximumRank, total: target)
            #expect(l1(ranks) == feasible.map(l1).min()!, "errors \(errors) ranks \(ranks) start \(start)")
            #expect(lInf(ranks) == feasible.map(lInf).min()!, "errors \(errors) ranks \(ranks) start \(start)")
        }
    }

    @Test func uninformativeErrorsGiveTheUniformAllocation() throws {
        for errors in [[0.0, 0, 0], [1, .nan, 2], [1, -1, 2], [1, .infinity, 2]] {
            #expect(try RankAllocation.allocate(errors: errors, meanRank: 6, maximumRank: 16) == [6, 6, 6], "errors \(errors)")
        }
        #expect(RankAllocation.uniform(meanRank: 9, layerCount: 2) == [9, 9])
    }

    @Test func unreachableMeanRanksAreRefused() {
        #expect(throws: RankAllocation.Failure.unreachableMeanRank(meanRank: 17, layerCount: 3, maximumRank: 16)) {
            try RankAllocation.allocate(errors: [1, 2, 3], meanRank: 17, maximumRank: 16)
        }
        #expect(throws: RankAllocation.Failure.self) { try RankAllocation.allocate(errors: [1], meanRank: 0, maximumRank: 16) }
        let message = RankAllocation.Failure.unreachableMeanRank(meanRank: 17, layerCount: 3, maximumRank: 16).description
        #expect(message.contains("51") && message.contains("3...48"))
    }
}

import Foundation
