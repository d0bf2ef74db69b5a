import Foundation

/// Reading a `ModelConfig` from a Hugging Face `config.json` (transformers'
/// LlamaConfig / MistralConfig / Qwen2Config keys and defaults).
extension ModelConfig {
    /// Parses `config.json` bytes; `file` names the file in errors.
    public init(huggingFaceConfig data: Data, file: String) throws {
        let document: JSONValue
        do { document = try JSONDecoder().decode(JSONValue.self, from: data) } catch {
            throw ModelFormatError.invalid(file: file, field: "JSON", reason: "not valid JSON")
        }
        guard let json = document.object else {
            throw ModelFormatError.invalid(file: file, field: "JSON", reason: "the top level is not an object")
        }
        let keys = HuggingFaceConfigKeys(json: json, file: file)
        func field(_ key: String) -> String { keys.field(key) }
        func value<T>(_ key: String, _ type: T.Type, default fallback: T? = nil) throws -> T {
            try keys.value(key, type, default: fallback)
        }
        let modelType = try value("model_type", String.self)
        guard let family = ModelFamilies.family(huggingFaceModelType: modelType) else {
            throw ModelFormatError.unsupported(file: file, field: field("model_type"),
                                               reason: "'\(modelType)' is not an architecture losad runs (\(ModelFamilies.huggingFaceModelTypeList))")
        }
        let hidden = try value("hidden_size", Int.self)
        let heads = try value("num_attention_heads", Int.self)
        let context = try value("max_position_embeddings", Int.self, default: 2048)
        // transformers ≥ 5 writes `rope_parameters` {rope_type, rope_theta, scaling keys} instead of
        // `rope_theta` and `rope_scaling`; older files have the two separate keys.
        var ropeParameters = json["rope_parameters"].flatMap { $0.isNull ? nil : $0 }
        if let ropeParameters, ropeParameters.object == nil {
            throw ModelFormatError.invalid(file: file, field: field("rope_parameters"), reason: "expected an object, found \(ropeParameters.summary)")
        }
        // Families with a rope per layer kind (gemma3) nest them: {full_attention: {…}, sliding_attention: {…}}.
        var parametersKey = "rope_parameters", slidingTheta: Double?
        if let full = ropeParameters?["full_attention"] {
            slidingTheta = ropeParameters?["sliding_attention"]?["rope_theta"]?.number
            if let sliding = ropeParameters?["sliding_attention"], let kind = sliding["rope_type"]?.string, kind != "default" {
                throw ModelFormatError.unsupported(file: file, field: field("rope_parameters.sliding_attention.rope_type"),
                                                   reason: "'\(kind)' (losad scales only the full-attention layers' rope)")
            }
            ropeParameters = full
            parametersKey = "rope_parameters.full_attention"
        }
        let ropeThetaKey = ropeParameters?["rope_theta"]?.number != nil ? "\(parametersKey).rope_theta" : "rope_theta"
        let ropeTheta = try ropeParameters?["rope_theta"]?.number ?? value("rope_theta", Double.self, default: 10_000)
        let scalingKey = json["rope_scaling"].map { !$0.isNull } == true ? "rope_scaling" : parametersKey
        let scalingSection = scalingKey == "rope_scaling" ? json["rope_scaling"]
            : ropeParameters.flatMap { ["default", nil].contains(($0["rope_type"] ?? $0["type"])?.string) ? nil : $0 }
        var scaling: Llama3RopeScaling?, linearFactor: Double?
        if let rope = scalingSection {
            guard rope.object != nil else {
                throw ModelFormatError.invalid(file: file, field: field(scalingKey), reason: "expected an object, found \(rope.summary)")
            }
            let kind = (rope["rope_type"] ?? rope["type"])?.string ?? "?"
            func number(_ key: String) throws -> Double {
                guard let n = rope[key]?.number else {
                    throw ModelFormatError.invalid(file: file, field: field("\(scalingKey).\(key)"), reason: "missing or not a number")
                }
                return n
            }
            switch kind {
            case "llama3":
                scaling = Llama3RopeScaling(factor: try number("factor"),
                                            lowFrequencyFactor: try number("low_freq_factor"),
                                            highFrequencyFactor: try number("high_freq_factor"),
                                            originalContextLength: Int(try number("original_max_position_embeddings")))
            case "linear":
                linearFactor = try number("factor")
            default:
                throw ModelFormatError.unsupported(file: file, field: field("\(scalingKey).rope_type"),
                                                   reason: "'\(kind)' (losad runs unscaled, linear and llama3-style rope)")
            }
        }
        self.init(
            architecture: family.architecture,
            layerCount: try value("num_hidden_layers", Int.self),
            hiddenSize: hidden,
            headCount: heads,
            kvHeadCount: try value("num_key_value_heads", Int.self, default: heads),
            headDim: try value("head_dim", Int.self, default: heads > 0 ? hidden / heads : 0),
            ffnSize: try value("intermediate_size", Int.self),
            vocabSize: try value("vocab_size", Int.self),
            contextLength: context,
            ropeTheta: ropeTheta,
            ropeScaling: scaling,
            ropeLayout: .halfSplit,
            rmsNormEpsilon: try value("rms_norm_eps", Double.self, default: 1e-6),
            tiedEmbeddings: try value("tie_word_embeddings", Bool.self, default: false),
            attentionBias: try value("attention_bias", Bool.self, default: false)
        )
        block.ropeLinearFactor = linearFactor
        block.slidingRopeTheta = slidingTheta
        try family.read(keys, into: &self)
        let keyNames: [String: String] = [
            "layerCount": "num_hidden_layers", "hiddenSize": "hidden_size", "headCount": "num_attention_heads",
            "kvHeadCount": "num_key_value_heads", "headDim": "head_dim", "ffnSize": "intermediate_size",
            "vocabSize": "vocab_size", "contextLength": "max_position_embeddings", "ropeTheta": ropeThetaKey,
            "rmsNormEpsilon": "rms_norm_eps", "ropeScaling": scalingKey, "ropeLinearFactor": "\(scalingKey).factor",
            "attentionSoftcap": "attn_logit_softcapping", "finalLogitSoftcap": "final_logit_softcapping",
            "slidingWindow": "sliding_window", "slidingRopeTheta": "rope_local_base_freq", "layerSpans": "layer_types",
            "attentionScale": "query_pre_attn_scalar",
        ]
        self = try validated(file: file) { field(keyNames[$0] ?? $0) }
    }
}
