/// Qwen2 / Qwen2.5: LLaMA's block with q/k/v biases; NEOX rope (GGUF keeps HF's row order).
enum Qwen2: ModelFamily {
    static let architecture = ModelConfig.Architecture.qwen2
    static let ggufNames: Set<String> = ["qwen2"]
    static let huggingFaceModelTypes: Set<String> = ["qwen2"]
    static let ggufRopeLayout = ModelConfig.RopeLayout.halfSplit

    static func read(_ keys: GGUFConfigKeys, into config: inout ModelConfig) throws {}

    static func read(_ keys: HuggingFaceConfigKeys, into config: inout ModelConfig) throws {
        config.attentionBias = true
        try Qwen3.readSlidingWindow(keys, into: &config)
    }
}
