/// What makes a model family different from LLaMA, in one file per family: the names it goes by
/// in GGUF (`general.architecture`) and Hugging Face (`model_type`), the rotary layout of its GGUF
/// q/k rows, and how it reads its `ModelConfig.BlockOptions` from each format's keys. The shared
/// keys (sizes, heads, rope base, epsilon) are read once in `ModelConfig+GGUF` and `+HuggingFace`.
protocol ModelFamily {
    static var architecture: ModelConfig.Architecture { get }
    /// `general.architecture` values of this family's GGUF files.
    static var ggufNames: Set<String> { get }
    /// `model_type` values of this family's `config.json`.
    static var huggingFaceModelTypes: Set<String> { get }
    /// How the family's GGUF stores q/k rows (llama.cpp permutes LLaMA's; NEOX-rope families keep HF's).
    static var ggufRopeLayout: ModelConfig.RopeLayout { get }
    /// Reads the family's options from GGUF metadata into `config` (shared keys already read).
    static func read(_ keys: GGUFConfigKeys, into config: inout ModelConfig) throws
    /// Reads the family's options from `config.json` into `config` (shared keys already read).
    static func read(_ keys: HuggingFaceConfigKeys, into config: inout ModelConfig) throws
}

enum ModelFamilies {
    static var all: [any ModelFamily.Type] { [Llama.self, Mistral.self, Qwen2.self, Qwen3.self, Gemma2.self, Gemma3.self, Phi3.self] }

    /// The family whose GGUF files say `name`.
    static func family(ggufName name: String) -> (any ModelFamily.Type)? {
        all.first { $0.ggufNames.contains(name) }
    }

    /// The family whose `config.json` says `modelType`.
    static func family(huggingFaceModelType modelType: String) -> (any ModelFamily.Type)? {
        all.first { $0.huggingFaceModelTypes.contains(modelType) }
    }

    /// Every name losad runs, for error sentences.
    static var ggufNameList: String { all.flatMap { $0.ggufNames }.sorted().joined(separator: ", ") }
    static var huggingFaceModelTypeList: String { all.flatMap { $0.huggingFaceModelTypes }.sorted().joined(separator: ", ") }
}

extension ModelConfig {
    /// Layer kinds from a period: layer i slides unless (i + 1) is a multiple of `period` (period 2:
    /// sliding, full, sliding, …; gemma3's 6: five sliding then one full) — transformers' and
    /// llama.cpp's `set_swa_pattern` rule.
    static func slidingPattern(period: Int, layers: Int) -> [AttentionSpan] {
        (0..<layers).map { (($0 + 1) % period) == 0 ? .full : .sliding }
    }
}
