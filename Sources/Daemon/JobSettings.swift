import Foundation

/// What one job is asked to do: the `[job]` keys of `losad.toml`, as the configuration had them
/// when the model arrived, with whatever a `submit` overrode. Stored in the ledger as canonical
/// JSON (`Ledger.canonicalJSON`) under the same snake_case names as the TOML keys, so two jobs
/// with equal settings have equal text and a dropped duplicate is recognised.
public struct JobSettings: Codable, Sendable, Equatable {
    public var sparsity: Double
    public var method: DaemonConfig.Method
    public var pattern: DaemonConfig.Pattern
    public var allocation: DaemonConfig.Allocation
    public var recovery: DaemonConfig.Recovery
    public var profile: DaemonConfig.Profile
    /// Text file the model is calibrated and fine-tuned on; nil: the runner's built-in text.
    public var calibrationCorpus: String?
    /// Text file perplexity is measured on; nil: the runner's built-in text.
    public var evaluationCorpus: String?
    public var exportType: DaemonConfig.ExportType
    /// Budgets that replace the profile's (omitted from the stored JSON when all are the profile's).
    public var budget: DaemonConfig.Budget?

    /// The configuration's job defaults.
    public init(_ defaults: DaemonConfig.JobDefaults) {
        sparsity = defaults.sparsity
        method = defaults.method
        pattern = defaults.pattern
        allocation = defaults.allocation
        recovery = defaults.recovery
        profile = defaults.profile
        calibrationCorpus = defaults.calibrationCorpus
        evaluationCorpus = defaults.evaluationCorpus
        exportType = defaults.exportType
        budget = defaults.budget == DaemonConfig.Budget() ? nil : defaults.budget
    }

    enum CodingKeys: String, CodingKey {
        case sparsity, method, pattern, allocation, recovery, profile
        case calibrationCorpus = "calibration_corpus"
        case evaluationCorpus = "evaluation_corpus"
        case exportType = "export_type"
        case budget
    }

    /// Settings a `submit` may change; nil keeps the configuration's value.
    public struct Overrides: Codable, Sendable, Equatable {
        public var sparsity: Double?
        public var method: DaemonConfig.Method?
        public var pattern: DaemonConfig.Pattern?
        public var allocation: DaemonConfig.Allocation?
        public var recovery: DaemonConfig.Recovery?
        public var profile: DaemonConfig.Profile?
        public var calibrationCorpus: String?
        public var evaluationCorpus: String?
        public var exportType: DaemonConfig.ExportType?

        public init(sparsity: Double? = nil, method: DaemonConfig.Method? = nil, pattern: DaemonConfig.Pattern? = nil,
                    allocation: DaemonConfig.Allocation? = nil, recovery: DaemonConfig.Recovery? = nil,
                    profile: DaemonConfig.Profile? = nil, calibrationCorpus: String? = nil, evaluationCorpus: String? = nil,
                    exportType: DaemonConfig.ExportType? = nil) {
            self.sparsity = sparsity
            self.method = method
            self.pattern = pattern
            self.allocation = allocation
            self.recovery = recovery
            self.profile = profile
            self.calibrationCorpus = calibrationCorpus
            self.evaluationCorpus = evaluationCorpus
            self.exportType = exportType
        }

        enum CodingKeys: String, CodingKey {
            case sparsity, method, pattern, allocation, recovery, profile
            case calibrationCorpus = "calibration_corpus"
            case evaluationCorpus = "evaluation_corpus"
            case exportType = "export_type"
        }
    }

    /// These settings with `overrides` applied, checked as the configuration file's `[job]` keys are.
    /// A pattern that fixes the sparsity (2:4, 4:8) brings its sparsity along unless one is given.
    /// - Throws: `ManagerError.invalidSettings` naming the key, the value and what is allowed.
    public func applying(_ overrides: Overrides) throws -> JobSettings {
        var result = self
        if let pattern = overrides.pattern {
            result.pattern = pattern
            if overrides.sparsity == nil, let fixed = pattern.fixedSparsity { result.sparsity = fixed }
        }
        if let sparsity = overrides.sparsity {
            guard sparsity.isFinite, (0.01...0.95).contains(sparsity) else {
                throw ManagerError.invalidSettings(key: "sparsity", value: "\(sparsity)",
                                                   allowed: "a fraction of weights to zero, from 0.01 to 0.95")
            }
            result.sparsity = sparsity
        }
        if let fixed = result.pattern.fixedSparsity, result.sparsity != fixed {
            throw ManagerError.invalidSettings(key: "sparsity", value: "\(result.sparsity)",
                                               allowed: "\(fixed), the sparsity pattern \"\(result.pattern.rawValue)\" makes")
        }
        if let method = overrides.method { result.method = method }
        if let allocation = overrides.allocation { result.allocation = allocation }
        if let recovery = overrides.recovery { result.recovery = recovery }
        if let profile = overrides.profile { result.profile = profile }
        if let exportType = overrides.exportType { result.exportType = exportType }
        for (key, path, apply) in [("calibration_corpus", overrides.calibrationCorpus, { (r: inout JobSettings, p: String?) in r.calibrationCorpus = p }),
                                   ("evaluation_corpus", overrides.evaluationCorpus, { (r: inout JobSettings, p: String?) in r.evaluationCorpus = p })] {
            guard let path else { continue }
            if path.isEmpty {
                apply(&result, nil)
                continue
            }
            guard path.hasPrefix("/"), JobSettings.isReadableFile(path) else {
                throw ManagerError.invalidSettings(key: key, value: "\"\(path)\"",
                                                   allowed: "an absolute path of a readable text file, or \"\" for the built-in text")
            }
            apply(&result, path)
        }
        return result
    }

    static func isReadableFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
            && FileManager.default.isReadableFile(atPath: path)
    }
}
