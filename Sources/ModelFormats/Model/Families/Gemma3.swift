/// Gemma 3 (text): Gemma 2's block without soft-capping and with per-head q/k RMSNorms; five
/// sliding layers per full one; the sliding layers' rope has its own base (`rope_local_base_freq`,
/// 10 000) and the full layers' may be linearly scaled (`rope_scaling`, factor 8 from 4B up).
enum Gemma3: ModelFamily {
    static let architecture = ModelConfig.Architecture.gemma3
    static let ggufNames: Set<String> = ["gemma3"]
    static let huggingFaceModelTypes: Set<String> = ["gemma3_text"]
    static let ggufRopeLayout = ModelConfig.RopeLayout.halfSplit

    static func read(_ keys: GGUFConfigKeys, into config: inout ModelConfig) throws {
        Gemma2.applyCommon(to: &config)
        config.block.queryKeyNorm = true
        config.block.slidingWindow = try keys.int("attention.sliding_window")
        config.block.layerSpans = ModelConfig.slidingPattern(period: 6, layers: config.layerCount)
        config.block.attentionScale = try Gemma2.ggufAttentionScale(keys, config: config, layersOf27B: 62)
        // llama.cpp's fixed local base, unless a newer converter wrote one.
        config.block.slidingRopeTheta = try keys.double("rope.freq_base_swa", default: 10_000)
    }

    static func read(_ keys: HuggingFaceConfigKeys, into config: inout ModelConfig) throws {
        Gemma2.applyCommon(to: &config)
        config.block.huggingFaceNormOffset = true
        config.block.queryKeyNorm = true
        if try keys.optional("attn_logit_softcapping", Double.self) != nil {
            throw keys.unsupported("attn_logit_softcapping", "Gemma 3 does not cap attention; a value here is not a model losad knows")
        }
        config.block.finalLogitSoftcap = try keys.optional("final_logit_softcapping", Double.self)
        try Gemma2.readAttention(keys, into: &config, period: 6)
        // transformers ≥ 5 nests it in rope_parameters.sliding_attention (read with the shared keys).
        if config.block.slidingRopeTheta == nil {
            config.block.slidingRopeTheta = try keys.value("rope_local_base_freq", Double.self, default: 10_000)
        }
    }
}
