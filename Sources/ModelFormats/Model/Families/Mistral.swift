/// Mistral: LLaMA's block with sliding-window attention on every layer when `sliding_window` is
/// set (v0.1: 4096; later versions null). llama.cpp converts Mistral to GGUF as "llama", dropping
/// the window, so its GGUF files read as `Llama`.
enum Mistral: ModelFamily {
    static let architecture = ModelConfig.Architecture.mistral
    static let ggufNames: Set<String> = []
    static let huggingFaceModelTypes: Set<String> = ["mistral"]
    static let ggufRopeLayout = ModelConfig.RopeLayout.adjacent

    static func read(_ keys: GGUFConfigKeys, into config: inout ModelConfig) throws {}

    static func read(_ keys: HuggingFaceConfigKeys, into config: inout ModelConfig) throws {
        if let window = try keys.optional("sliding_window", Int.self) {
            config.block.slidingWindow = window
            config.block.layerSpans = Array(repeating: .sliding, count: config.layerCount)
        }
    }
}
