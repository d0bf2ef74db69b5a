/// Layer-wise sparsities from layer importances (shared/docs/LOSA.md, "The dynamic loop", step 3).
///
/// The reference solves
///
///     minimise Σ_l x_l·imp_l   subject to   mean(x) = s_t,   s_t − δ ≤ x_l ≤ s_t + δ
///
/// with a general SLSQP solver. It is a linear program over a box cut by one hyperplane, whose
/// optimum is greedy: the least important layers are raised to the upper bound first, and at most
/// one group of layers ends strictly between the bounds. This solves it exactly.
///
/// Shapes: L layers; importance, x [L].
public enum SparsityAllocation {
    /// The half-width δ of the band around the iteration sparsity s_t: 0.01 up to 0.5, 0.02 up to
    /// 0.6, 0.03 up to 0.7 (the reference's values), then **[ours]** 0.04 up to 0.8 and 0.05 above:
    /// one more hundredth per tenth, as the reference's steps go, capped at 0.05 because a layer
    /// pruned 5 points above a high target already loses much of its remaining weights.
    public static func band(sparsity s: Double) -> Double {
        if s <= 0.5 { return 0.01 }
        if s <= 0.6 { return 0.02 }
        if s <= 0.7 { return 0.03 }
        if s <= 0.8 { return 0.04 }
        return 0.05
    }

    /// The bounds of every x_l: [s − δ, s + δ] clamped into [0, 1): the lower end at 0, the upper end
    /// at most half-way from s to 1 so that no layer is ever pruned entirely. The target stays inside.
    public static func bounds(target s: Double, band δ: Double) -> (lower: Double, upper: Double) {
        precondition(s >= 0 && s < 1, "sparsity allocation: target \(s) must be in [0, 1)")
        precondition(δ >= 0 && δ.isFinite, "sparsity allocation: band \(δ) must be finite and non-negative")
        return (max(0, s - δ), min(s + δ, (1 + s) / 2))
    }

    /// The exact minimiser x [L] of Σ x_l·imp_l with mean(x) = `target` and every x_l within
    /// `bounds(target:band:)` (band δ(target) unless given).
    ///
    /// Layers are raised to the upper bound in increasing order of importance. Layers of exactly
    /// equal importance move together and share any remainder equally (every split of a tie is
    /// optimal; an equal one does not depend on layer order), so the answer is deterministic and at
    /// most one group of equally important layers sits strictly between the bounds.
    public static func allocate(target s: Double, importance: [Double], band: Double? = nil) -> [Double] {
        precondition(!importance.isEmpty, "sparsity allocation: no layers")
        precondition(importance.allSatisfy(\.isFinite), "sparsity allocation: importances \(importance) must be finite")
        let (lower, upper) = bounds(target: s, band: band ?? SparsityAllocation.band(sparsity: s))
        let count = importance.count, total = Double(count) * s
        var x = Array(repeating: lower, count: count)
        let order = importance.indices.sorted { (importance[$0], $0) < (importance[$1], $1) }
        var raised = 0
        var start = 0
        while start < count {
            var end = start + 1
            while end < count && importance[order[end]] == importance[order[start]] { end += 1 }
            let group = end - start
            // What the sum still lacks with `raised` layers at the upper bound and the rest at the lower.
            let deficit = total - Double(raised) * upper - Double(count - raised) * lower
            if deficit <= 0 { break }
            if deficit >= Double(group) * (upper - lower) {
                for i in start..<end { x[order[i]] = upper }
                raised += group
            } else {
                let value = lower + deficit / Double(group)
                for i in start..<end { x[order[i]] = value }
                break
            }
            start = end
        }
        return x
    }

    /// Every layer at the target: the allocation without importances.
    public static func uniform(target s: Double, layerCount: Int) -> [Double] {
        precondition(s >= 0 && s < 1, "sparsity allocation: target \(s) must be in [0, 1)")
        precondition(layerCount >= 1, "sparsity allocation: \(layerCount) layers")
        return Array(repeating: s, count: layerCount)
    }
}
