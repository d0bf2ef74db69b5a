/// The per-iteration targets of the LoSA loop (shared/docs/LOSA.md, "The dynamic loop", steps 1 and 6).
public struct SparsitySchedule: Sendable, Equatable {
    /// The final average sparsity s, in [0, 1).
    public let target: Double
    /// The number of LoSA iterations T.
    public let iterations: Int

    public init(target: Double, iterations: Int) {
        precondition(target >= 0 && target < 1, "sparsity schedule: target \(target) must be in [0, 1)")
        precondition(iterations >= 1, "sparsity schedule: \(iterations) iterations")
        self.target = target
        self.iterations = iterations
    }

    /// s_t = s − s·(1 − t/T)³ for t in 1...T: the cubic schedule grows fast first, then settles;
    /// the last iteration is exactly at the target.
    public func sparsity(iteration t: Int) -> Double {
        precondition((1...iterations).contains(t), "sparsity schedule: iteration \(t) of \(iterations)")
        let remaining = 1 - Double(t) / Double(iterations)
        return target - target * remaining * remaining * remaining
    }

    /// The mean rank r̄_t = 5 + t of iteration t (6, 7, 8, 9, 10 for T = 5).
    public func meanRank(iteration t: Int) -> Int {
        precondition((1...iterations).contains(t), "sparsity schedule: iteration \(t) of \(iterations)")
        return 5 + t
    }
}
