/// Reading a `ModelConfig` from GGUF metadata (keys `{arch}.block_count` …, as
/// llama.cpp's converter writes them; see the GGUF spec's "LLM" section).
extension ModelConfig {
    /// - Parameters:
    ///   - metadata: the file's key/value pairs.
    ///   - tensorShapes: row-major shapes by GGUF tensor name (to find tied heads, biases, the vocabulary).
    public init(ggufMetadata metadata: [String: GGUFValue], tensorShapes: [String: [Int]], file: String) throws {
        func field(_ key: String) -> String { "metadata key '\(key)'" }
        guard let name = metadata["general.architecture"]?.stringValue else {
            throw ModelFormatError.invalid(file: file, field: field("general.architecture"), reason: "missing or not a string")
        }
        let architecture: Architecture
        switch name {
        case "llama": architecture = .llama
        case "qwen2": architecture = .qwen2
        default:
            throw ModelFormatError.unsupported(file: file, field: field("general.architecture"),
                                               reason: "'\(name)' is not an architecture losad runs (llama, qwen2)")
        }
        func int(_ suffix: String, default fallback: Int? = nil) throws -> Int {
            let key = "\(name).\(suffix)"
            guard let value = metadata[key] else {
                if let fallback { return fallback }
                throw ModelFormatError.invalid(file: file, field: field(key), reason: "missing")
            }
            guard let number = value.intValue else {
                throw ModelFormatError.invalid(file: file, field: field(key), reason: "expected an integer, found \(value.type)")
            }
            return number
        }
        func double(_ suffix: String, default fallback: Double) throws -> Double {
            let key = "\(name).\(suffix)"
            guard let value = metadata[key] else { return fallback }
            guard let number = value.doubleValue else {
                throw ModelFormatError.invalid(file: file, field: field(key), reason: "expected a number, found \(value.type)")
            }
            return number
        }
        let hidden = try int("embedding_length")
        let heads = try int("attention.head_count")
        let headDim = try int("attention.key_length", default: heads > 0 ? hidden / heads : 0)
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
        if let scaling = metadata["\(name).rope.scaling.type"]?.stringValue, scaling != "none" {
            throw ModelFormatError.unsupported(file: file, field: field("\(name).rope.scaling.type"),
                                               reason: "rope scaling '\(scaling)' (losad runs unscaled and llama3-style rope)")
        }
        self.init(
            architecture: architecture,
            layerCount: try int("block_count"),
            hiddenSize: hidden,
            headCount: heads,
            kvHeadCount: try int("attention.head_count_kv", default: heads),
            headDim: headDim,
            ffnSize: try int("feed_forward_length"),
            vocabSize: vocabulary,
            contextLength: try int("context_length", default: 2048),
            ropeTheta: try double("rope.freq_base", default: 10_000),
            // Llama 3.1 GGUFs carry their scaled frequencies as the tensor rope_freqs.weight.
            ropeScaling: nil,
            ropeLayout: architecture == .qwen2 ? .halfSplit : .adjacent,
            rmsNormEpsilon: try double("attention.layer_norm_rms_epsilon", default: 1e-5),
            tiedEmbeddings: tensorShapes["output.weight"] == nil,
            attentionBias: tensorShapes["blk.0.attn_q.bias"] != nil
        )
        let keyNames: [String: String] = [
            "layerCount": "block_count", "hiddenSize": "embedding_length", "headCount": "attention.head_count",
            "kvHeadCount": "attention.head_count_kv", "headDim": "attention.key_length", "ffnSize": "feed_forward_length",
            "vocabSize": "vocab_size", "contextLength": "context_length", "ropeTheta": "rope.freq_base",
            "rmsNormEpsilon": "attention.layer_norm_rms_epsilon", "ropeScaling": "rope.scaling.type",
        ]
        self = try validated(file: file) { field("\(name).\(keyNames[$0] ?? $0)") }
    }
}
