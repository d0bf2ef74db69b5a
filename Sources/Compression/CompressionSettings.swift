import ModelFormats
import Transformer

/// How the layer sparsities of an iteration are chosen (LOSA.md step 3).
public enum LayerAllocationMode: String, Sendable, Codable, CaseIterable {
    /// From representation mutual information: the exact solution of the linear program.
    case rmi
    /// Every layer at the iteration's sparsity.
    case uniform
}

/// What recovers the quality lost to pruning.
public enum RecoveryMethod: String, Sendable, Codable, CaseIterable {
    /// The LoSA loop: T iterations of growing sparsity, sparse LoRA with ranks from reconstruction errors.
    case losa
    /// The baseline: prune to the final sparsity at once, train dense LoRA with the same budget, merge and re-mask.
    case lora
    /// Pruning alone.
    case none
}

/// What happens to the weights a mask keeps, after Wanda or magnitude chose the mask (SparseGPT updates its own).
public enum WeightReconstruction: String, Sendable, Codable, CaseIterable {
    /// They keep their values.
    case none
    /// Refitted by least squares to the projection's outputs before pruning, on the calibration inputs
    /// (`reconstructPrunedWeight`), after every pruning step.
    case leastSquares = "least-squares"

    /// The refit's knobs; nil for none.
    public var options: WeightReconstructionOptions? {
        self == .leastSquares ? WeightReconstructionOptions() : nil
    }
}

/// The terms adapter training minimises, by name (`TrainingObjective` holds their weights): next-token
/// cross-entropy (ce), KL divergence from the dense model's next-token distribution at temperature τ (kd),
/// and the dense model's block outputs (hidden, SquareHead's normalised squared error). Each named term has
/// weight 1, hidden the job's `hidden_loss_weight`.
public enum TrainingObjectiveName: String, Sendable, Codable, CaseIterable {
    case ce
    case kd
    case ceKD = "ce+kd"
    case ceHidden = "ce+hidden"
    case kdHidden = "kd+hidden"
    case ceKDHidden = "ce+kd+hidden"

    public static let defaultTemperature = 1.0
    public static let defaultHiddenWeight = 1.0

    /// The weights this name gives, with distillation temperature τ and hidden-state weight `hiddenWeight`.
    public func objective(temperature: Double, hiddenWeight: Double) -> TrainingObjective {
        let terms = Set(rawValue.split(separator: "+").map(String.init))
        return TrainingObjective(crossEntropyWeight: terms.contains("ce") ? 1 : 0, distillationWeight: terms.contains("kd") ? 1 : 0,
                                 hiddenStateWeight: terms.contains("hidden") ? hiddenWeight : 0, temperature: temperature)
    }
}

/// A named set of budgets (how much data and training a job spends); every field can be overridden.
public enum CompressionProfile: String, Sendable, Codable, CaseIterable {
    /// The demo: minutes on 2 CPU cores for a 135M model.
    case quick
    /// A longer CPU job: more calibration data and four times the training of `quick`.
    case standard
    /// The reference hyper-parameters of LOSA.md (hours to days on a CPU).
    case paper

    /// The objective of a job of this profile that names none: `paper` trains on cross-entropy as LOSA.md does;
    /// the CPU budgets add distillation from the dense model (measured in README, "Compressing a model").
    public var defaultObjective: TrainingObjectiveName {
        switch self {
        case .quick, .standard: return .ceKD
        case .paper: return .ce
        }
    }

    /// Whether a job of this profile that says nothing refits surviving weights: `paper` does not (LOSA.md has no
    /// such step); the CPU budgets do (measured in README, "Compressing a model").
    public var defaultWeightReconstruction: WeightReconstruction {
        switch self {
        case .quick, .standard: return .leastSquares
        case .paper: return .none
        }
    }
}

/// Every knob of a compression job. `CompressionSettings(profile:)` gives a profile's values; callers then
/// override fields. `validate()` names the first field out of range.
public struct CompressionSettings: Sendable, Codable, Equatable {
    public var profile: CompressionProfile
    /// Target average sparsity s of the seven projections of every layer, in [0, 1).
    public var sparsity: Double
    public var method: PruningMethod
    public var pattern: SparsityPattern
    public var allocation: LayerAllocationMode
    public var recovery: RecoveryMethod
    /// LoSA iterations T.
    public var iterations: Int

    /// Calibration windows (pruning statistics, RMI, reconstruction errors) and their length in tokens.
    public var calibrationWindows: Int
    public var calibrationLength: Int

    /// Training windows over the whole job (LOSA.md: 10000 samples; the last iteration gets `lastIterationShare`
    /// of them, the others share the rest equally) and their length in tokens.
    public var trainingSamples: Int
    public var trainingLength: Int
    public var lastIterationShare: Double
    /// Windows per forward/backward pass, and passes per optimiser step.
    public var batchSize: Int
    public var gradientAccumulation: Int
    public var learningRate: Double
    public var weightDecay: Double
    public var warmupFraction: Double
    public var gradientClip: Double
    /// Sparse-LoRA shape: maximum rank R, scaling (alpha / 8), adapter-input dropout.
    public var maximumRank: Int
    public var loraScaling: Double
    public var loraDropout: Double
    /// The fixed rank of the `lora` baseline's adapters (LOSA.md's reference configures 8).
    public var baselineRank: Int
    /// What adapter training minimises (LOSA.md: next-token cross-entropy).
    public var objective: TrainingObjective
    /// Whether surviving weights are refitted after each pruning step (`refitOptions` says whether it happens).
    public var weightReconstruction: WeightReconstruction

    /// Evaluation window length and the most windows scored per text (0: all of them).
    public var evaluationLength: Int
    public var evaluationWindows: Int

    /// Tensor type of the pruned projections in the output.
    public var exportType: ExportTensorType
    /// The files the job writes (`JobSettings.outputs`).
    public var outputs: JobOutputs
    /// Seeds window sampling, adapter initialisation and dropout: a job is reproducible from it.
    public var seed: UInt64

    public init(profile: CompressionProfile = .quick) {
        self.profile = profile
        sparsity = 0.5
        method = .wanda
        pattern = .unstructured
        allocation = .rmi
        recovery = .losa
        iterations = 5
        lastIterationShare = 0.6
        batchSize = 4
        learningRate = 2e-4
        weightDecay = 0.001
        warmupFraction = 0.3
        gradientClip = 0.3
        maximumRank = Self.defaultMaximumRank
        loraScaling = 2
        loraDropout = 0.1
        baselineRank = 8
        objective = profile.defaultObjective.objective(temperature: TrainingObjectiveName.defaultTemperature,
                                                       hiddenWeight: TrainingObjectiveName.defaultHiddenWeight)
        weightReconstruction = profile.defaultWeightReconstruction
        exportType = .auto
        outputs = .all
        seed = 0
        switch profile {
        case .quick:
            calibrationWindows = 32
            calibrationLength = 256
            trainingSamples = 160
            trainingLength = 256
            gradientAccumulation = 1
            // Measured on the demo model at 50% (README, "The schedule"): 1e-3 beats 5e-4 for LoSA (quick and 320
            // windows) and for the plain LoRA baseline alike.
            learningRate = 1e-3
            // Measured on the demo model at 50% (README, "The schedule"): three iterations without adapter dropout
            // tie five with 0.1 (15.373 / 24.997 against 15.428 / 24.957) in less time (dropout makes every adapted
            // projection two products forward and three backward instead of one and two). At 70% three iterations
            // cost 2.7% / 1.2%.
            iterations = 3
            loraDropout = 0
            evaluationLength = 512
            evaluationWindows = 24
        case .standard:
            calibrationWindows = 64
            calibrationLength = 256
            trainingSamples = 640
            trainingLength = 256
            gradientAccumulation = 2
            // Measured on the demo model at 50% (README, "The schedule"): 1e-3 beats 3e-4 here too (13.306 / 24.151
            // against 14.962 / 24.452 on the held-out Python documentation / perldiag).
            learningRate = 1e-3
            evaluationLength = 512
            evaluationWindows = 64
        case .paper:
            calibrationWindows = 128
            calibrationLength = 2048
            trainingSamples = 10000
            trainingLength = 1024
            gradientAccumulation = 2
            evaluationLength = 4096
            evaluationWindows = 0
        }
    }

    // MARK: - Ranges (the job settings' keys take theirs from here: JobSettingKey)

    /// The adapters' maximum rank R unless changed.
    public static let defaultMaximumRank = 16
    /// LoSA iterations: the mean rank 5 + T must fit under R.
    public static let iterationRange = 1...(defaultMaximumRank - 5)
    public static let calibrationWindowRange = 1...100_000
    public static let trainingSampleRange = 0...10_000_000
    /// The most evaluation windows per text that may be asked for (0 scores all of them).
    public static let evaluationWindowLimit = 1_000_000
    public static let windowLengthRange = 2...32768

    /// The first setting out of range, as a typed error naming it.
    public func validate() throws(CompressionError) {
        func check(_ ok: Bool, _ field: String, _ value: Any, _ allowed: String) throws(CompressionError) {
            if !ok { throw .invalidSetting(field: field, value: "\(value)", allowed: allowed) }
        }
        func check(_ key: JobSettingKey, _ value: Int, _ range: ClosedRange<Int>) throws(CompressionError) {
            try check(range.contains(value), key.rawValue, value, key.budgetText!)
        }
        try check(sparsity.isFinite && JobSettingKey.sparsityRange.contains(sparsity), "sparsity", sparsity,
                  JobSettingKey.sparsity.allowed)
        try check(.iterations, iterations, Self.iterationRange)
        try check(.calibrationWindows, calibrationWindows, Self.calibrationWindowRange)
        try check(.calibrationLength, calibrationLength, Self.windowLengthRange)
        try check(Self.trainingSampleRange.contains(trainingSamples), "training_samples", trainingSamples,
                  "\(Self.trainingSampleRange.lowerBound) to \(Self.trainingSampleRange.upperBound) windows")
        try check(.trainingLength, trainingLength, Self.windowLengthRange)
        try check(lastIterationShare > 0 && lastIterationShare <= 1, "last_iteration_share", lastIterationShare, "(0, 1]")
        try check((1...1024).contains(batchSize), "batch_size", batchSize, "1 to 1024")
        try check((1...1024).contains(gradientAccumulation), "gradient_accumulation", gradientAccumulation, "1 to 1024")
        try check(learningRate > 0 && learningRate < 1, "learning_rate", learningRate, "(0, 1)")
        try check(weightDecay >= 0 && weightDecay < 1, "weight_decay", weightDecay, "[0, 1)")
        try check(warmupFraction >= 0 && warmupFraction < 1, "warmup_fraction", warmupFraction, "[0, 1)")
        try check(gradientClip > 0, "gradient_clip", gradientClip, "a positive norm")
        try check((1...256).contains(maximumRank), "maximum_rank", maximumRank, "1 to 256")
        try check(loraScaling > 0 && loraScaling.isFinite, "lora_scaling", loraScaling, "a positive number")
        try check(loraDropout >= 0 && loraDropout < 1, "lora_dropout", loraDropout, "[0, 1)")
        try check((1...maximumRank).contains(baselineRank), "baseline_rank", baselineRank, "1 to maximum_rank (\(maximumRank))")
        try check([objective.crossEntropyWeight, objective.distillationWeight, objective.hiddenStateWeight].allSatisfy { $0 >= 0 && $0.isFinite }
                  && objective.crossEntropyWeight + objective.distillationWeight + objective.hiddenStateWeight > 0,
                  "objective", objective, "weights ≥ 0, at least one of them positive")
        try check(JobSettingKey.kdTemperatureRange.contains(objective.temperature), "kd_temperature", objective.temperature,
                  JobSettingKey.kdTemperature.allowed)
        try check(.evaluationLength, evaluationLength, Self.windowLengthRange)
        try check((0...Self.evaluationWindowLimit).contains(evaluationWindows), "evaluation_windows", evaluationWindows,
                  "0 (every window) to \(Self.evaluationWindowLimit) windows")
        if recovery == .losa {
            // Mean ranks 5 + t must fit under R: 5 + T ≤ R.
            try check(5 + iterations <= maximumRank, "iterations", iterations,
                      "at most maximum_rank − 5 (\(maximumRank - 5)) for LoSA, whose mean rank is 5 + t")
        }
        if let fixed = pattern.fixedSparsity, sparsity != fixed {
            try check(false, "sparsity", sparsity, "\(fixed), the sparsity pattern \"\(pattern)\" makes")
        }
    }

    /// The refit's knobs where one runs: least squares asked for, after a method that does not update its own
    /// weights (SparseGPT does); nil otherwise.
    public var refitOptions: WeightReconstructionOptions? {
        method == .sparseGPT ? nil : weightReconstruction.options
    }

    /// Training windows of iteration t (1...T): the last gets `lastIterationShare`, the others share the rest;
    /// the sum over iterations is `trainingSamples` (remainders go to the last).
    public func trainingSamples(iteration t: Int) -> Int {
        let rounds = recovery == .losa ? iterations : 1
        guard rounds > 1 else { return trainingSamples }
        let early = Int((Double(trainingSamples) * (1 - lastIterationShare) / Double(rounds - 1)).rounded(.down))
        return t < rounds ? early : trainingSamples - early * (rounds - 1)
    }
}

extension CompressionSettings {
    enum CodingKeys: String, CodingKey {
        case profile, sparsity, method, pattern, allocation, recovery, iterations, calibrationWindows, calibrationLength
        case trainingSamples, trainingLength, lastIterationShare, batchSize, gradientAccumulation, learningRate
        case weightDecay, warmupFraction, gradientClip, maximumRank, loraScaling, loraDropout, baselineRank, objective
        case weightReconstruction
        case evaluationLength, evaluationWindows, exportType, outputs, seed
    }

    /// Reports and checkpoints written before `objective` existed trained on cross-entropy alone; before
    /// `weightReconstruction`, nothing was refitted.
    public init(from decoder: any Swift.Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(profile: try c.decode(CompressionProfile.self, forKey: .profile))
        sparsity = try c.decode(Double.self, forKey: .sparsity)
        method = try c.decode(PruningMethod.self, forKey: .method)
        pattern = try c.decode(SparsityPattern.self, forKey: .pattern)
        allocation = try c.decode(LayerAllocationMode.self, forKey: .allocation)
        recovery = try c.decode(RecoveryMethod.self, forKey: .recovery)
        iterations = try c.decode(Int.self, forKey: .iterations)
        calibrationWindows = try c.decode(Int.self, forKey: .calibrationWindows)
        calibrationLength = try c.decode(Int.self, forKey: .calibrationLength)
        trainingSamples = try c.decode(Int.self, forKey: .trainingSamples)
        trainingLength = try c.decode(Int.self, forKey: .trainingLength)
        lastIterationShare = try c.decode(Double.self, forKey: .lastIterationShare)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        gradientAccumulation = try c.decode(Int.self, forKey: .gradientAccumulation)
        learningRate = try c.decode(Double.self, forKey: .learningRate)
        weightDecay = try c.decode(Double.self, forKey: .weightDecay)
        warmupFraction = try c.decode(Double.self, forKey: .warmupFraction)
        gradientClip = try c.decode(Double.self, forKey: .gradientClip)
        maximumRank = try c.decode(Int.self, forKey: .maximumRank)
        loraScaling = try c.decode(Double.self, forKey: .loraScaling)
        loraDropout = try c.decode(Double.self, forKey: .loraDropout)
        baselineRank = try c.decode(Int.self, forKey: .baselineRank)
        objective = try c.decodeIfPresent(TrainingObjective.self, forKey: .objective) ?? .crossEntropy
        weightReconstruction = try c.decodeIfPresent(WeightReconstruction.self, forKey: .weightReconstruction) ?? WeightReconstruction.none
        evaluationLength = try c.decode(Int.self, forKey: .evaluationLength)
        evaluationWindows = try c.decode(Int.self, forKey: .evaluationWindows)
        exportType = try c.decode(ExportTensorType.self, forKey: .exportType)
        outputs = try c.decode(JobOutputs.self, forKey: .outputs)
        seed = try c.decode(UInt64.self, forKey: .seed)
    }
}

extension PruningMethod: Codable {}

/// Encoded as its text ("unstructured", "2:4").
extension SparsityPattern: Codable {
    public init(from decoder: any Swift.Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { self = try SparsityPattern(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    public func encode(to encoder: any Swift.Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
