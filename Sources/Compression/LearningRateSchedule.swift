/// Linear warm-up, then linear decay to zero: the schedule of Hugging Face transformers'
/// `get_linear_schedule_with_warmup`, with the warm-up length the Trainer derives from a ratio
/// (`ceil(ratio · total steps)`).
///
///     rate(k) = peak · k / w                       for k < w
///     rate(k) = peak · max(0, (S − k) / (S − w))   otherwise
///
/// k is the 0-based index of the optimizer step, so the first step runs at rate 0 when there is a
/// warm-up, exactly as the reference's LambdaLR does; w warm-up steps of S in all.
public struct LearningRateSchedule: Sendable, Equatable, Codable {
    /// The rate at the end of the warm-up.
    public let peak: Double
    /// S, the optimizer steps of the whole schedule.
    public let totalSteps: Int
    /// w, the steps of the warm-up.
    public let warmupSteps: Int

    /// The reference's warm-up: 30% of the steps (LOSA.md, "Fine-tune").
    public static let defaultWarmupFraction = 0.3

    /// A schedule of `totalSteps` steps warming up over ceil(`warmupFraction`·`totalSteps`) of them.
    public init(peak: Double, totalSteps: Int, warmupFraction: Double = defaultWarmupFraction) {
        precondition(warmupFraction >= 0 && warmupFraction <= 1, "learning-rate schedule: warm-up fraction \(warmupFraction) must be in [0, 1]")
        self.init(peak: peak, totalSteps: totalSteps,
                  warmupSteps: Int((Double(max(totalSteps, 0)) * warmupFraction).rounded(.up)))
    }

    /// A schedule with an explicit warm-up length.
    public init(peak: Double, totalSteps: Int, warmupSteps: Int) {
        precondition(peak >= 0 && peak.isFinite, "learning-rate schedule: peak rate \(peak)")
        precondition(totalSteps >= 0 && warmupSteps >= 0, "learning-rate schedule: \(warmupSteps) warm-up steps of \(totalSteps)")
        self.peak = peak
        self.totalSteps = totalSteps
        self.warmupSteps = warmupSteps
    }

    /// The rate of optimizer step `k` (0-based); 0 from step S on.
    public func rate(step k: Int) -> Double {
        precondition(k >= 0, "learning-rate schedule: step \(k)")
        if k < warmupSteps { return peak * (Double(k) / Double(max(1, warmupSteps))) }
        return peak * max(0, Double(totalSteps - k) / Double(max(1, totalSteps - warmupSteps)))
    }
}
