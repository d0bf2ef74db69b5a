/// Qwen3 (dense): LLaMA's block with per-head RMSNorm of q and k before rope, no biases, and a head
/// dimension of its own (`head_dim`, GGUF `attention.key_length`); NEOX rope.
enum Qwen3: ModelFamily {
    static let architecture = ModelConfig.Architecture.qwen3
    static let ggufNames: Set<String> = ["qwen3"]
    static let huggingFaceModelTypes: Set<String> = ["qwen3"]
    static let ggufRopeLayout = ModelConfig.RopeLayout.halfSplit

    static func read(_ keys: GGUFConfigKeys, into config: inout ModelConfig) throws {
        config.block.queryKeyNorm = true
    }

    static func read(_ keys: HuggingFaceConfigKeys, into config: inout ModelConfig) throws {
        config.block.queryKeyNorm = true
        try readSlidingWindow(keys, into: &config)
    }

    /// Qwen's optional window: with `use_sliding_window`, the layers from `max_window_layers` on
    /// slide (transformers' `layer_types` when the file has it).
    static func readSlidingWindow(_ keys: HuggingFaceConfigKeys, into config: inout ModelConfig) throws {
        guard try keys.value("use_sliding_window", Bool.self, default: false) else { return }
        let window = try keys.value("sliding_window", Int.self)
        config.block.slidingWindow = window
        if let spans = try keys.layerSpans(count: config.layerCount) {
            config.block.layerSpans = spans
        } else {
            let first = try keys.value("max_window_layers", Int.self, default: config.layerCount)
            config.block.layerSpans = (0..<config.layerCount).map { $0 >= first ? .sliding : .full }
        }
    }
}
