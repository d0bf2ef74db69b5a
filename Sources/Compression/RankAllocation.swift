/// LoRA ranks per layer from the layers' reconstruction errors (shared/docs/LOSA.md, "The dynamic
/// loop", step 6): layers that pruning hurt more get more rank, the ranks sum to r̄_t·L exactly.
///
///     r_l = clip(round(e_l / Σe · r̄_t · L), 1, R)
///
/// then single ranks are removed (first from the layers with the smallest error) or added (first to
/// the largest) until Σ r_l = r̄_t·L. **[ours]** The adjustments go round-robin in that order, one rank
/// per layer per pass, so a layer moves at most one rank more than any other eligible layer: the
/// smallest total change that can fix the sum, spread as evenly as the bounds allow.
///
/// Shapes: L layers; errors e, ranks r [L]; R the maximum rank.
public enum RankAllocation {
    /// Why ranks cannot be allocated.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// r̄·L ranks cannot be spread over L layers with 1 ≤ r_l ≤ R (r̄ outside 1...R).
        case unreachableMeanRank(meanRank: Int, layerCount: Int, maximumRank: Int)

        public var description: String {
            switch self {
            case .unreachableMeanRank(let meanRank, let layerCount, let maximumRank):
                return "rank allocation: a mean rank of \(meanRank) over \(layerCount) layers needs \(meanRank * layerCount) ranks, but each layer holds 1...\(maximumRank) (\(layerCount)...\(maximumRank * layerCount) in all); choose a mean rank in 1...\(maximumRank) or raise the maximum rank"
            }
        }
    }

    /// Ranks [L] in 1...`maximumRank` summing to `meanRank`·L, proportional to `errors` as far as rounding allows.
    ///
    /// Errors that carry no information — any NaN, infinite or negative value, or all zero — give
    /// every layer `meanRank` (the uniform allocation), since no layer can be called worse than another.
    /// Among equal errors, the lower layer index is adjusted first.
    public static func allocate(errors: [Double], meanRank: Int, maximumRank: Int) throws(Failure) -> [Int] {
        let count = errors.count
        precondition(count >= 1, "rank allocation: no layers")
        guard meanRank >= 1, meanRank <= maximumRank else {
            throw .unreachableMeanRank(meanRank: meanRank, layerCount: count, maximumRank: maximumRank)
        }
        let target = meanRank * count
        let total = errors.reduce(0, +)
        guard errors.allSatisfy({ $0.isFinite && $0 >= 0 }), total > 0, total.isFinite else {
            return uniform(meanRank: meanRank, layerCount: count)
        }
        var ranks = errors.map { error -> Int in
            // Python's round(), as the reference: halves to even.
            let share = (error / total * Double(target)).rounded(.toNearestOrEven)
            return Int(min(max(share, 1), Double(maximumRank)))
        }
        let ascending = errors.indices.sorted { (errors[$0], $0) < (errors[$1], $1) }
        let descending = errors.indices.sorted { (errors[$0], -$0) > (errors[$1], -$1) }
        var sum = ranks.reduce(0, +)
        // Each pass moves every eligible layer by one at most; the bounds guarantee progress (1 ≤ r̄ ≤ R).
        while sum > target {
            for layer in ascending where sum > target && ranks[layer] > 1 {
                ranks[layer] -= 1
                sum -= 1
            }
        }
        while sum < target {
            for layer in descending where sum < target && ranks[layer] < maximumRank {
                ranks[layer] += 1
                sum += 1
            }
        }
        return ranks
    }

    /// Every layer at `meanRank`.
    public static func uniform(meanRank: Int, layerCount: Int) -> [Int] {
        precondition(layerCount >= 1, "rank allocation: \(layerCount) layers")
        return Array(repeating: meanRank, count: layerCount)
    }
}
