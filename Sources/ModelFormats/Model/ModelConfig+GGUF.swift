/// Reading a `ModelConfig` from GGUF metadata (keys `{arch}.block_count` …, as
/// llama.cpp's converter writes them; see the GGUF spec's "LLM" section); the family's own keys
/// are read by its file in `Families/`.
extension ModelConfig {
    /// - Parameters:
    ///   - metadata: the file's key/value pairs.
    ///   - tensorShapes: row-major shapes by GGUF tensor name (to find tied heads, biases, the vocabulary).
    public init(ggufMetadata metadata: [String: GGUFValue], tensorShapes: [String: [Int]], file: String) throws {
        func field(_ key: String) -> String { "metadata key '\(key)'" }
        guard let name = metadata["general.architecture"]?.stringValue else {
            throw ModelFormatError.invalid(file: file, field: field("general.architecture"), reason: "missing or not a string")
        }
        guard let family = ModelFamilies.family(ggufName: name) else {
            throw ModelFormatError.unsupported(file: file, field: field("general.architecture"),
                                               reason: "'\(name)' is not an architecture losad runs (\(ModelFamilies.ggufNameList))")
        }
        let keys = GGUFConfigKeys(metadata: metadata, prefix: name, file: file)
        let hidden = try keys.int("embedding_length")
        let heads = try keys.int("attention.head_count")
        let headDim = try keys.int("attention.key_length", default: heads > 0 ? hidden / heads : 0)
        if let valueLength = try keys.optionalInt("attention.value_length"), valueLength != headDim {
            throw keys.unsupported("attention.value_length", "\(valueLength) differs from the key length \(headDim)")
        }
        let vocabulary: Int
        if let count = metadata["\(name).vocab_size"]?.intValue {
            vocabulary = count
        } else if let tokens = metadata["tokenizer.ggml.tokens"]?.arrayValue {
            vocabulary = tokens.count
        } else if let embedding = tensorShapes["token_embd.weight"], embedding.count == 2 {
            vocabulary = embedding[0]
        } else {
            throw ModelFormatError.invalid(file: file, field: field("\(name).vocab_size"), reason: "missing, and no tokenizer.ggml.tokens or token_embd.weight to count")
        }
        let scalingType = keys.optionalString("rope.scaling.type")
        if let scaling = scalingType, scaling != "none", scaling != "linear" {
            throw keys.unsupported("rope.scaling.type", "rope scaling '\(scaling)' (losad runs unscaled, linear and llama3-style rope)")
        }
        self.init(
            architecture: family.architecture,
            layerCount: try keys.int("block_count"),
            hiddenSize: hidden,
            headCount: heads,
            kvHeadCount: try keys.int("attention.head_count_kv", default: heads),
            headDim: headDim,
            ffnSize: try keys.int("feed_forward_length"),
            vocabSize: vocabulary,
            contextLength: try keys.int("context_length", default: 2048),
            ropeTheta: try keys.double("rope.freq_base", default: 10_000),
            // Llama 3.1 GGUFs carry their scaled frequencies as the tensor rope_freqs.weight.
            ropeScaling: nil,
            ropeLayout: family.ggufRopeLayout,
            rmsNormEpsilon: try keys.double("attention.layer_norm_rms_epsilon", default: 1e-5),
            tiedEmbeddings: tensorShapes["output.weight"] == nil,
            attentionBias: tensorShapes["blk.0.attn_q.bias"] != nil
        )
        if scalingType == "linear" { block.ropeLinearFactor = try keys.double("rope.scaling.factor", default: 1) }
        try family.read(keys, into: &self)
        let keyNames: [String: String] = [
            "layerCount": "block_count", "hiddenSize": "embedding_length", "headCount": "attention.head_count",
            "kvHeadCount": "attention.head_count_kv", "headDim": "attention.key_length", "ffnSize": "feed_forward_length",
            "vocabSize": "vocab_size", "contextLength": "context_length", "ropeTheta": "rope.freq_base",
            "rmsNormEpsilon": "attention.layer_norm_rms_epsilon", "ropeScaling": "rope.scaling.type",
            "attentionSoftcap": "attn_logit_softcapping", "finalLogitSoftcap": "final_logit_softcapping",
            "slidingWindow": "attention.sliding_window", "slidingRopeTheta": "rope.freq_base_swa",
            "ropeLinearFactor": "rope.scaling.factor", "attentionScale": "attention.scale",
        ]
        self = try validated(file: file) { field("\(name).\(keyNames[$0] ?? $0)") }
    }
}
