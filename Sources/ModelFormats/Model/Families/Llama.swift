/// LLaMA (1–3.x, SmolLM, TinyLlama): the base block. Llama 3.x rope scaling comes from
/// `rope_scaling` in config.json and from the `rope_freqs` tensor in GGUF.
enum Llama: ModelFamily {
    static let architecture = ModelConfig.Architecture.llama
    static let ggufNames: Set<String> = ["llama"]
    static let huggingFaceModelTypes: Set<String> = ["llama"]
    static let ggufRopeLayout = ModelConfig.RopeLayout.adjacent

    static func read(_ keys: GGUFConfigKeys, into config: inout ModelConfig) throws {}
    static func read(_ keys: HuggingFaceConfigKeys, into config: inout ModelConfig) throws {}
}
