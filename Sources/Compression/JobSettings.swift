import Foundation
import ModelFormats

/// What one compression job is asked to do, as a person chooses it: the `[job]` keys of `losad.toml`, the
/// settings of `losactl submit` (io.losa.Manager's `Submit`) and the options of `losad compress`. This is the
/// one declaration of those settings — their names (`JobSettingKey`), the values each allows, the defaults
/// and the sentence an invalid value gets — and every entry point parses through `set(_:_:)`, so a value is
/// accepted or refused with the same words wherever it comes from. `compressionSettings()` turns the choices
/// into every knob of the engine (`CompressionSettings`: the profile's budgets with these on top).
///
/// Stored in the ledger as canonical JSON under the keys' names, so two jobs with equal settings have equal
/// text and a dropped duplicate is recognised.
public struct JobSettings: Codable, Sendable, Equatable {
    /// Target average sparsity s, the fraction of projection weights that end up zero.
    public var sparsity: Double
    public var method: PruningMethod
    public var pattern: SparsityPattern
    public var allocation: LayerAllocationMode
    public var recovery: RecoveryMethod
    public var profile: CompressionProfile
    /// Text file the model is calibrated and fine-tuned on (absolute); nil: the built-in text.
    public var calibrationCorpus: String?
    /// Text file perplexity is measured on (absolute); nil: the built-in text.
    public var evaluationCorpus: String?
    public var exportType: ExportTensorType
    /// The files the job writes.
    public var outputs: JobOutputs
    /// Budgets that replace the profile's (nil when all are the profile's, and then absent from the stored JSON).
    public var budget: Budget?
    /// The terms adapter training minimises (nil: the profile's `defaultObjective`, absent from the stored JSON).
    public var objective: TrainingObjectiveName? = nil
    /// τ of the distillation term (nil: `TrainingObjectiveName.defaultTemperature`).
    public var kdTemperature: Double? = nil
    /// Weight of the hidden-state term when the objective has it (nil: `TrainingObjectiveName.defaultHiddenWeight`).
    public var hiddenLossWeight: Double? = nil
    /// Whether surviving weights are refitted after pruning (nil: the profile's `defaultWeightReconstruction`,
    /// absent from the stored JSON).
    public var weightReconstruction: WeightReconstruction? = nil

    /// The values of a key left out (the same as `Config/losad.toml`); every other value comes from these
    /// through `set(_:_:)` or `applying(_:)`.
    public static let defaults = JobSettings(sparsity: 0.5, method: .wanda, pattern: .unstructured, allocation: .rmi,
                                             recovery: .losa, profile: .standard, calibrationCorpus: nil,
                                             evaluationCorpus: nil, exportType: .auto, outputs: .all, budget: nil)

    /// How much work a job does where it overrides its profile (each nil: the profile's value).
    public struct Budget: Codable, Sendable, Equatable {
        /// LoSA iterations T.
        public var iterations: Int?
        /// Calibration windows (pruning statistics, layer similarity, reconstruction errors).
        public var calibrationWindows: Int?
        /// Training windows over the whole job.
        public var trainingSamples: Int?
        /// Evaluation windows per text.
        public var evaluationWindows: Int?
        /// Window lengths in tokens.
        public var calibrationLength: Int?
        public var trainingLength: Int?
        public var evaluationLength: Int?

        public init(iterations: Int? = nil, calibrationWindows: Int? = nil, trainingSamples: Int? = nil,
                    evaluationWindows: Int? = nil, calibrationLength: Int? = nil, trainingLength: Int? = nil,
                    evaluationLength: Int? = nil) {
            self.iterations = iterations
            self.calibrationWindows = calibrationWindows
            self.trainingSamples = trainingSamples
            self.evaluationWindows = evaluationWindows
            self.calibrationLength = calibrationLength
            self.trainingLength = trainingLength
            self.evaluationLength = evaluationLength
        }

        /// The budget keys, in `JobSettingKey`'s order.
        static let keys = JobSettingKey.allCases.filter { field($0) != nil }

        /// Encoded under the keys' own names (`JobSettingKey`), absent ones left out.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: JobSettingKey.self)
            for key in Budget.keys { self[keyPath: Budget.field(key)!] = try container.decodeIfPresent(Int.self, forKey: key) }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: JobSettingKey.self)
            for key in Budget.keys { try container.encodeIfPresent(self[keyPath: Budget.field(key)!], forKey: key) }
        }

        /// The field a budget key sets.
        static func field(_ key: JobSettingKey) -> WritableKeyPath<Budget, Int?>? {
            switch key {
            case .iterations: return \.iterations
            case .calibrationWindows: return \.calibrationWindows
            case .trainingSamples: return \.trainingSamples
            case .evaluationWindows: return \.evaluationWindows
            case .calibrationLength: return \.calibrationLength
            case .trainingLength: return \.trainingLength
            case .evaluationLength: return \.evaluationLength
            default: return nil
            }
        }
    }

    enum CodingKeys: String, CodingKey {
        case sparsity, method, pattern, allocation, recovery, profile, outputs, budget
        case calibrationCorpus = "calibration_corpus"
        case evaluationCorpus = "evaluation_corpus"
        case exportType = "export_type"
        case objective
        case kdTemperature = "kd_temperature"
        case hiddenLossWeight = "hidden_loss_weight"
        case weightReconstruction = "weight_reconstruction"
    }

    // MARK: - Setting one key

    /// A value as an entry point has it: text (a command-line option, a varlink string), a number (TOML,
    /// varlink's `sparsity`), a list (a TOML array), or anything else rendered as the file had it.
    public enum Value: Sendable, Equatable, CustomStringConvertible {
        case text(String)
        case number(Double)
        case list([String])
        case other(String)

        /// The value as an error sentence quotes it.
        public var description: String {
            switch self {
            case .text(let text): return "\"\(text)\""
            case .number(let number): return number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : "\(number)"
            case .list(let items): return "[" + items.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
            case .other(let rendered): return rendered
            }
        }
    }

    /// Sets `key` to `value`, checked against what the key allows.
    /// - Throws: `CompressionError.invalidSetting` naming the key, the value and the allowed values.
    public mutating func set(_ key: JobSettingKey, _ value: Value) throws(CompressionError) {
        let refuse = CompressionError.invalidSetting(field: key.rawValue, value: value.description, allowed: key.allowed)
        func word<T: RawRepresentable & CaseIterable>(_ type: T.Type) throws(CompressionError) -> T where T.RawValue == String {
            guard case .text(let text) = value, let parsed = T(rawValue: text) else { throw refuse }
            return parsed
        }
        switch key {
        case .sparsity:
            guard let number = value.number, number.isFinite, JobSettingKey.sparsityRange.contains(number) else { throw refuse }
            sparsity = number
        case .method: method = try word(PruningMethod.self)
        case .pattern:
            guard case .text(let text) = value, text == text.lowercased(), let parsed = try? SparsityPattern(parsing: text),
                  parsed.fixedSparsity.map(JobSettingKey.sparsityRange.contains) ?? true else { throw refuse }
            pattern = parsed
        case .allocation: allocation = try word(LayerAllocationMode.self)
        case .recovery: recovery = try word(RecoveryMethod.self)
        case .profile: profile = try word(CompressionProfile.self)
        case .exportType: exportType = try word(ExportTensorType.self)
        case .calibrationCorpus, .evaluationCorpus:
            guard case .text(let path) = value else { throw refuse }
            let file: String? = path.isEmpty ? nil : path
            if let file, !(file.hasPrefix("/") && JobSettings.isReadableFile(file)) { throw refuse }
            if key == .calibrationCorpus { calibrationCorpus = file } else { evaluationCorpus = file }
        case .outputs:
            guard case .list(let names) = value, let parsed = JobOutputs(names: names) else { throw refuse }
            outputs = parsed
        // Values that default to a constant are stored as nil when equal to it, so that they have the same stored
        // JSON whether named or left out; the objective and the refit default to the profile's, so a named one is
        // kept as named and only "" stores nil.
        case .objective:
            // "" keeps the profile's (as the budget keys' 0 does).
            objective = value == .text("") ? nil : try word(TrainingObjectiveName.self)
        case .kdTemperature:
            guard let number = value.number, number.isFinite, JobSettingKey.kdTemperatureRange.contains(number) else { throw refuse }
            kdTemperature = number == TrainingObjectiveName.defaultTemperature ? nil : number
        case .weightReconstruction:
            weightReconstruction = value == .text("") ? nil : try word(WeightReconstruction.self)
        case .hiddenLossWeight:
            guard let number = value.number, number.isFinite, JobSettingKey.hiddenLossWeightRange.contains(number) else { throw refuse }
            hiddenLossWeight = number == TrainingObjectiveName.defaultHiddenWeight ? nil : number
        case .iterations, .calibrationWindows, .trainingSamples, .evaluationWindows, .calibrationLength,
             .trainingLength, .evaluationLength:
            guard let number = value.number, number == number.rounded(), abs(number) < 1e15,
                  let range = key.budgetRange, Int(number) == 0 || range.contains(Int(number)) else { throw refuse }
            var budget = self.budget ?? Budget()
            budget[keyPath: Budget.field(key)!] = Int(number) == 0 ? nil : Int(number)
            self.budget = budget == Budget() ? nil : budget
        }
    }

    /// These settings with `changes` applied in the keys' order, then checked across keys. A pattern that
    /// fixes the sparsity (N:M) brings its sparsity along unless `changes` gives one.
    /// - Throws: `CompressionError.invalidSetting` for the first value that is not allowed.
    public func applying(_ changes: [JobSettingKey: Value]) throws(CompressionError) -> JobSettings {
        var result = self
        for key in JobSettingKey.allCases {
            if let value = changes[key] { try result.set(key, value) }
        }
        if changes[.pattern] != nil, changes[.sparsity] == nil, let fixed = result.pattern.fixedSparsity {
            result.sparsity = fixed
        }
        try result.validate()
        return result
    }

    /// Checks what no single key can (an N:M pattern makes its own sparsity) by resolving the settings.
    public func validate() throws(CompressionError) {
        _ = try compressionSettings()
    }

    // MARK: - What the engine runs

    /// Every knob of the engine: the profile's values with these settings on top, validated.
    public func compressionSettings() throws(CompressionError) -> CompressionSettings {
        var s = CompressionSettings(profile: profile)
        s.sparsity = sparsity
        s.method = method
        s.pattern = pattern
        s.allocation = allocation
        s.recovery = recovery
        s.exportType = exportType
        s.outputs = outputs
        s.weightReconstruction = weightReconstruction ?? profile.defaultWeightReconstruction
        s.objective = (objective ?? profile.defaultObjective).objective(temperature: kdTemperature ?? TrainingObjectiveName.defaultTemperature,
                                                        hiddenWeight: hiddenLossWeight ?? TrainingObjectiveName.defaultHiddenWeight)
        if let budget {
            if let v = budget.iterations { s.iterations = v }
            if let v = budget.calibrationWindows { s.calibrationWindows = v }
            if let v = budget.trainingSamples { s.trainingSamples = v }
            if let v = budget.evaluationWindows { s.evaluationWindows = v }
            if let v = budget.calibrationLength { s.calibrationLength = v }
            if let v = budget.trainingLength { s.trainingLength = v }
            if let v = budget.evaluationLength { s.evaluationLength = v }
        }
        try s.validate()
        return s
    }

    /// The texts: the corpus files when set, else the built-in text (its held-out part for evaluation).
    public var texts: TextSources {
        TextSources(calibration: calibrationCorpus.map(TextSource.file) ?? .pythonDocumentation,
                    evaluation: evaluationCorpus.map { [.file($0)] } ?? [])
    }

    static func isReadableFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
            && FileManager.default.isReadableFile(atPath: path)
    }
}

extension JobSettings {
    /// Rows stored before `outputs` existed have none: they wrote the interoperable export only.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sparsity = try c.decode(Double.self, forKey: .sparsity)
        method = try c.decode(PruningMethod.self, forKey: .method)
        pattern = try c.decode(SparsityPattern.self, forKey: .pattern)
        allocation = try c.decode(LayerAllocationMode.self, forKey: .allocation)
        recovery = try c.decode(RecoveryMethod.self, forKey: .recovery)
        profile = try c.decode(CompressionProfile.self, forKey: .profile)
        calibrationCorpus = try c.decodeIfPresent(String.self, forKey: .calibrationCorpus)
        evaluationCorpus = try c.decodeIfPresent(String.self, forKey: .evaluationCorpus)
        exportType = try c.decode(ExportTensorType.self, forKey: .exportType)
        outputs = try c.decodeIfPresent(JobOutputs.self, forKey: .outputs) ?? [.gguf]
        budget = try c.decodeIfPresent(Budget.self, forKey: .budget)
        objective = try c.decodeIfPresent(TrainingObjectiveName.self, forKey: .objective)
        kdTemperature = try c.decodeIfPresent(Double.self, forKey: .kdTemperature)
        hiddenLossWeight = try c.decodeIfPresent(Double.self, forKey: .hiddenLossWeight)
        weightReconstruction = try c.decodeIfPresent(WeightReconstruction.self, forKey: .weightReconstruction)
    }
}

extension JobSettings.Value {
    /// A number, or text that reads as one (a command-line option).
    var number: Double? {
        switch self {
        case .number(let number): return number
        case .text(let text): return Double(text.trimmingCharacters(in: .whitespaces))
        case .list, .other: return nil
        }
    }
}

/// The name of one job setting: the `[job]` key in `losad.toml`, the key in the ledger's JSON, and the
/// name every error sentence uses (`losactl submit` and `losad compress` spell it as an option).
public enum JobSettingKey: String, Sendable, CaseIterable, CodingKey {
    case sparsity, method, pattern, allocation, recovery, profile
    case calibrationCorpus = "calibration_corpus"
    case evaluationCorpus = "evaluation_corpus"
    case exportType = "export_type"
    case outputs
    case iterations
    case calibrationWindows = "calibration_windows"
    case trainingSamples = "training_samples"
    case evaluationWindows = "evaluation_windows"
    case calibrationLength = "calibration_length"
    case trainingLength = "training_length"
    case evaluationLength = "evaluation_length"
    case objective
    case kdTemperature = "kd_temperature"
    case hiddenLossWeight = "hidden_loss_weight"
    case weightReconstruction = "weight_reconstruction"

    /// The target sparsities a job may ask for.
    public static let sparsityRange = 0.01...0.95
    /// The distillation temperatures a job may ask for.
    public static let kdTemperatureRange = 0.25...16.0
    /// The weights of the hidden-state term a job may ask for.
    public static let hiddenLossWeightRange = 0.0...1000.0

    /// The values a budget key allows besides 0 (the profile's value).
    public var budgetRange: ClosedRange<Int>? {
        switch self {
        case .iterations: return CompressionSettings.iterationRange
        case .calibrationWindows: return CompressionSettings.calibrationWindowRange
        case .trainingSamples: return 1...CompressionSettings.trainingSampleRange.upperBound
        case .evaluationWindows: return 1...CompressionSettings.evaluationWindowLimit
        case .calibrationLength, .trainingLength, .evaluationLength: return CompressionSettings.windowLengthRange
        default: return nil
        }
    }

    /// What the key allows, as the end of the sentence "KEY = VALUE is not allowed; expected …".
    public var allowed: String {
        func words(_ names: [String]) -> String { "one of " + names.map { "\"\($0)\"" }.joined(separator: ", ") }
        switch self {
        case .sparsity:
            return "a fraction of weights to zero, from \(Self.sparsityRange.lowerBound) to \(Self.sparsityRange.upperBound)"
        case .method: return words(PruningMethod.allCases.map(\.rawValue))
        case .pattern:
            return "\"unstructured\" or \"N:M\" (keep N of every M inputs, M at most \(SparsityPattern.maximumGroupSize), making a sparsity 1 − N/M from \(Self.sparsityRange.lowerBound) to \(Self.sparsityRange.upperBound)), such as \"2:4\" or \"4:8\""
        case .allocation: return words(LayerAllocationMode.allCases.map(\.rawValue))
        case .recovery: return words(RecoveryMethod.allCases.map(\.rawValue))
        case .profile: return words(CompressionProfile.allCases.map(\.rawValue))
        case .exportType: return words(ExportTensorType.allCases.map(\.rawValue))
        case .calibrationCorpus, .evaluationCorpus:
            return "the absolute path of a readable text file, or \"\" for the built-in text"
        case .outputs:
            return "a list of one or more of " + JobOutput.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        case .objective:
            return words(TrainingObjectiveName.allCases.map(\.rawValue))
                + " (ce: next-token cross-entropy; kd: KL divergence from the dense model's next-token distribution; hidden: the dense model's block outputs), or \"\" for the profile's"
        case .kdTemperature:
            return "a distillation temperature from \(Self.kdTemperatureRange.lowerBound) to \(Self.kdTemperatureRange.upperBound)"
        case .weightReconstruction:
            return words(WeightReconstruction.allCases.map(\.rawValue))
                + " (least-squares: refit the weights Wanda or magnitude keep to the outputs before pruning; SparseGPT refits its own), or \"\" for the profile's"
        case .hiddenLossWeight:
            return "a weight of the hidden-state term from \(Self.hiddenLossWeightRange.lowerBound) to \(Self.hiddenLossWeightRange.upperBound)"
        case .iterations, .calibrationWindows, .trainingSamples, .evaluationWindows, .calibrationLength,
             .trainingLength, .evaluationLength:
            return budgetText! + ", or 0 for the profile's"
        }
    }

    /// A budget key's range in words, without the 0 that keeps the profile's value.
    var budgetText: String? {
        guard let range = budgetRange else { return nil }
        switch self {
        case .iterations:
            return "\(range.lowerBound) to \(range.upperBound) LoSA iterations (the mean rank 5 + t must fit under the maximum rank \(CompressionSettings.defaultMaximumRank))"
        case .calibrationLength, .trainingLength, .evaluationLength:
            return "\(range.lowerBound) to \(range.upperBound) tokens"
        default:
            return "\(range.lowerBound) to \(range.upperBound) windows"
        }
    }
}

/// One file a job writes.
public enum JobOutput: String, Sendable, Codable, CaseIterable {
    /// The interoperable export, in the input's own format (a GGUF file for a GGUF input, a Hugging Face folder
    /// for a folder), which loads wherever the original did.
    case gguf
    /// losad's compact sparse file (docs/sparse-format.md).
    case sparse
}

/// The set of files a job writes: at least one. Encoded as a list in `JobOutput`'s order, so equal sets are
/// equal text in the ledger.
public struct JobOutputs: Sendable, Equatable, Hashable, Codable, ExpressibleByArrayLiteral, CustomStringConvertible {
    private var members: Set<JobOutput>

    /// Every output.
    public static let all = JobOutputs(members: Set(JobOutput.allCases))

    private init(members: Set<JobOutput>) { self.members = members }

    public init(arrayLiteral elements: JobOutput...) {
        precondition(!elements.isEmpty, "a job writes at least one output")
        members = Set(elements)
    }

    /// The set named by `names`; nil when one is unknown or there is none.
    public init?(names: [String]) {
        var members = Set<JobOutput>()
        for name in names {
            guard let output = JobOutput(rawValue: name) else { return nil }
            members.insert(output)
        }
        guard !members.isEmpty else { return nil }
        self.members = members
    }

    public func contains(_ output: JobOutput) -> Bool { members.contains(output) }

    /// The outputs in `JobOutput`'s order.
    public var list: [JobOutput] { JobOutput.allCases.filter(members.contains) }

    public var description: String { list.map(\.rawValue).joined(separator: ",") }

    public init(from decoder: any Decoder) throws {
        let names = try decoder.singleValueContainer().decode([String].self)
        guard let parsed = JobOutputs(names: names) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "outputs \(names): \(JobSettingKey.outputs.allowed)"))
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(list.map(\.rawValue))
    }
}

extension SparsityPattern {
    /// The sparsity an N:M pattern makes (1 − N/M); nil for unstructured, whose sparsity is chosen.
    public var fixedSparsity: Double? {
        switch self {
        case .unstructured: return nil
        case .nOfM(let keep, let size): return 1 - Double(keep) / Double(size)
        }
    }
}
