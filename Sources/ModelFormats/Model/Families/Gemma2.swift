import Foundation

/// Gemma 2: pre- and post-sublayer RMSNorms (weights stored as w for a 1 + w norm in Hugging Face
/// files, as 1 + w in GGUF), GeGLU with tanh GELU, embeddings scaled by √C, attention scaled by
/// `query_pre_attn_scalar`^−½ and both attention scores and final logits soft-capped, sliding-window
/// attention on every other layer (layer 0 slides), tied output; NEOX rope.
enum Gemma2: ModelFamily {
    static let architecture = ModelConfig.Architecture.gemma2
    static let ggufNames: Set<String> = ["gemma2"]
    static let huggingFaceModelTypes: Set<String> = ["gemma2"]
    static let ggufRopeLayout = ModelConfig.RopeLayout.halfSplit

    static func read(_ keys: GGUFConfigKeys, into config: inout ModelConfig) throws {
        applyCommon(to: &config)
        config.block.attentionSoftcap = try keys.optionalDouble("attn_logit_softcapping")
        config.block.finalLogitSoftcap = try keys.optionalDouble("final_logit_softcapping")
        config.block.slidingWindow = try keys.int("attention.sliding_window")
        config.block.layerSpans = ModelConfig.slidingPattern(period: 2, layers: config.layerCount)
        config.block.attentionScale = try ggufAttentionScale(keys, config: config, layersOf27B: 46)
    }

    static func read(_ keys: HuggingFaceConfigKeys, into config: inout ModelConfig) throws {
        applyCommon(to: &config)
        config.block.huggingFaceNormOffset = true
        config.block.attentionSoftcap = try keys.optional("attn_logit_softcapping", Double.self)
        config.block.finalLogitSoftcap = try keys.optional("final_logit_softcapping", Double.self)
        try readAttention(keys, into: &config, period: 2)
    }

    /// What every Gemma generation shares.
    static func applyCommon(to config: inout ModelConfig) {
        config.block.gateActivation = .geluTanh
        config.block.postSublayerNorms = true
        config.block.embeddingScale = Double(config.hiddenSize).squareRoot()
    }

    /// `query_pre_attn_scalar`, the window and the layer kinds of a Gemma config.json.
    static func readAttention(_ keys: HuggingFaceConfigKeys, into config: inout ModelConfig, period: Int) throws {
        let scalar = try keys.value("query_pre_attn_scalar", Double.self, default: Double(config.headDim))
        config.block.attentionScale = 1 / scalar.squareRoot()
        config.block.slidingWindow = try keys.value("sliding_window", Int.self)
        config.block.layerSpans = try keys.layerSpans(count: config.layerCount)
            ?? ModelConfig.slidingPattern(period: try keys.value("sliding_window_pattern", Int.self, default: period),
                                          layers: config.layerCount)
    }

    /// GGUF carries no `query_pre_attn_scalar`: `attention.scale` when the converter wrote one, else
    /// llama.cpp's rule — C/H for the 27B shapes (gemma2: 46 layers, gemma3: 62), the head size otherwise.
    static func ggufAttentionScale(_ keys: GGUFConfigKeys, config: ModelConfig, layersOf27B: Int) throws -> Double {
        if let scale = try keys.optionalDouble("attention.scale"), scale > 0 { return scale }
        let scalar = config.layerCount == layersOf27B ? Double(config.hiddenSize / config.headCount) : Double(config.headDim)
        return 1 / scalar.squareRoot()
    }
}
