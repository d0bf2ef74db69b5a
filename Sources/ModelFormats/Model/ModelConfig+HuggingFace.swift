import Foundation

/// Reading a `ModelConfig` from a Hugging Face `config.json` (transformers'
/// LlamaConfig / MistralConfig / Qwen2Config keys and defaults).
extension ModelConfig {
    /// Parses `config.json` bytes; `file` names the file in errors.
    public init(huggingFaceConfig data: Data, file: String) throws {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw ModelFormatError.invalid(file: file, field: "JSON", reason: "not valid JSON (\(error.localizedDescription))")
        }
        guard let json = object as? [String: Any] else {
            throw ModelFormatError.invalid(file: file, field: "JSON", reason: "the top level is not an object")
        }
        func field(_ key: String) -> String { "key '\(key)'" }
        func value<T>(_ key: String, _ type: T.Type, default fallback: T? = nil) throws -> T {
            guard let raw = json[key], !(raw is NSNull) else {
                if let fallback { return fallback }
                throw ModelFormatError.invalid(file: file, field: field(key), reason: "missing")
            }
            if T.self == Int.self, let number = raw as? NSNumber, !(raw is Bool),
               let exact = Int(exactly: number.doubleValue) {
                return exact as! T
            }
            if T.self == Double.self, let number = raw as? NSNumber, !(raw is Bool) { return number.doubleValue as! T }
            if T.self == Bool.self, let flag = raw as? Bool { return flag as! T }
            if let typed = raw as? T, !(T.self == Int.self || T.self == Double.self) { return typed }
            throw ModelFormatError.invalid(file: file, field: field(key), reason: "expected \(T.self), found \(raw)")
        }
        let modelType = try value("model_type", String.self)
        guard let architecture = Architecture(rawValue: modelType) else {
            throw ModelFormatError.unsupported(file: file, field: field("model_type"),
                                               reason: "'\(modelType)' is not an architecture losad runs (llama, mistral, qwen2)")
        }
        let hidden = try value("hidden_size", Int.self)
        let heads = try value("num_attention_heads", Int.self)
        let context = try value("max_position_embeddings", Int.self, default: 2048)
        if architecture == .mistral, let window = json["sliding_window"] as? NSNumber, window.intValue < context {
            throw ModelFormatError.unsupported(file: file, field: field("sliding_window"),
                                               reason: "a sliding window of \(window) tokens below the context of \(context) (losad runs full attention)")
        }
        if architecture == .qwen2, (json["use_sliding_window"] as? Bool) == true {
            throw ModelFormatError.unsupported(file: file, field: field("use_sliding_window"), reason: "sliding-window attention (losad runs full attention)")
        }
        var scaling: Llama3RopeScaling?
        if let raw = json["rope_scaling"], !(raw is NSNull) {
            guard let rope = raw as? [String: Any] else {
                throw ModelFormatError.invalid(file: file, field: field("rope_scaling"), reason: "expected an object")
            }
            let kind = (rope["rope_type"] ?? rope["type"]) as? String ?? "?"
            guard kind == "llama3" else {
                throw ModelFormatError.unsupported(file: file, field: field("rope_scaling.rope_type"),
                                                   reason: "'\(kind)' (losad runs unscaled and llama3-style rope)")
            }
            func number(_ key: String) throws -> Double {
                guard let n = rope[key] as? NSNumber else {
                    throw ModelFormatError.invalid(file: file, field: field("rope_scaling.\(key)"), reason: "missing or not a number")
                }
                return n.doubleValue
            }
            scaling = Llama3RopeScaling(factor: try number("factor"),
                                        lowFrequencyFactor: try number("low_freq_factor"),
                                        highFrequencyFactor: try number("high_freq_factor"),
                                        originalContextLength: Int(try number("original_max_position_embeddings")))
        }
        self.init(
            architecture: architecture,
            layerCount: try value("num_hidden_layers", Int.self),
            hiddenSize: hidden,
            headCount: heads,
            kvHeadCount: try value("num_key_value_heads", Int.self, default: heads),
            headDim: try value("head_dim", Int.self, default: heads > 0 ? hidden / heads : 0),
            ffnSize: try value("intermediate_size", Int.self),
            vocabSize: try value("vocab_size", Int.self),
            contextLength: context,
            ropeTheta: try value("rope_theta", Double.self, default: 10_000),
            ropeScaling: scaling,
            ropeLayout: .halfSplit,
            rmsNormEpsilon: try value("rms_norm_eps", Double.self, default: 1e-6),
            tiedEmbeddings: try value("tie_word_embeddings", Bool.self, default: false),
            attentionBias: architecture == .qwen2 ? true : try value("attention_bias", Bool.self, default: false)
        )
        let keyNames: [String: String] = [
            "layerCount": "num_hidden_layers", "hiddenSize": "hidden_size", "headCount": "num_attention_heads",
            "kvHeadCount": "num_key_value_heads", "headDim": "head_dim", "ffnSize": "intermediate_size",
            "vocabSize": "vocab_size", "contextLength": "max_position_embeddings", "ropeTheta": "rope_theta",
            "rmsNormEpsilon": "rms_norm_eps", "ropeScaling": "rope_scaling",
        ]
        self = try validated(file: file) { field(keyNames[$0] ?? $0) }
    }
}
