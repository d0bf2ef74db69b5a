import Foundation

/// The stages of a compression job, in order.
public enum CompressionStage: String, Sendable, Codable, CaseIterable {
    case load, tokenize, evaluateDense = "evaluate-dense", denseFeatures = "dense-features"
    case prunedBaseline = "pruned-baseline", evaluatePruned = "evaluate-pruned"
    case rmi, prune, ranks, train, merge, export, evaluate
}

/// One progress report: where the job is and how far along. Sent often (every block, every step); the receiver
/// decides what to show or record.
public struct CompressionProgress: Sendable, Codable, Equatable {
    public var stage: CompressionStage
    /// LoSA iteration (1...T), 0 outside the loop.
    public var iteration: Int
    public var iterations: Int
    /// Unit within the stage (block, step, window batch) and how many there are.
    public var step: Int
    public var steps: Int
    /// The latest training loss, when training.
    public var loss: Double?
    /// Fraction of the whole job done, from the time each stage is expected to take.
    public var fraction: Double
    /// Seconds since the job started, and the estimate of the seconds left.
    public var elapsed: Double
    public var remaining: Double?
    /// A short human line for logs ("pruning block 12 of 30").
    public var message: String

    public init(stage: CompressionStage, iteration: Int = 0, iterations: Int = 0, step: Int = 0, steps: Int = 0,
                loss: Double? = nil, fraction: Double, elapsed: Double = 0, remaining: Double? = nil, message: String = "") {
        self.stage = stage
        self.iteration = iteration
        self.iterations = iterations
        self.step = step
        self.steps = steps
        self.loss = loss
        self.fraction = fraction
        self.elapsed = elapsed
        self.remaining = remaining
        self.message = message
    }
}

/// Turns stage-level step counts into a job fraction and an ETA. The weights are the rough share of wall
/// time each stage takes (from measured runs on the demo model); the ETA extrapolates the elapsed time.
struct ProgressClock {
    let start = Date()
    /// Planned work units per (stage, iteration), with their weights.
    private var plan: [(key: String, weight: Double)] = []
    private var done: [String: Double] = [:]

    mutating func plan(_ key: String, weight: Double) { plan.append((key, weight)) }

    mutating func mark(_ key: String, fraction: Double) { done[key] = min(max(fraction, 0), 1) }

    var fraction: Double {
        let total = plan.reduce(0) { $0 + $1.weight }
        guard total > 0 else { return 0 }
        return plan.reduce(0) { $0 + $1.weight * (done[$1.key] ?? 0) } / total
    }

    var elapsed: Double { Date().timeIntervalSince(start) }

    var remaining: Double? {
        let f = fraction
        return f > 0.02 ? elapsed * (1 - f) / f : nil
    }
}
