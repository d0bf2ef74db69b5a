/// The role of a checkpoint tensor in a LLaMA-family decoder, and its name in
/// each format: GGUF (`blk.N.attn_q.weight`, llama.cpp's names) and Hugging
/// Face (`model.layers.N.self_attn.q_proj.weight`, transformers' names).
/// Names stay at this boundary; the engine uses roles.
public enum TensorRole: Hashable, Sendable {
    case tokenEmbedding
    case outputNorm
    case output
    /// Llama 3.1 GGUFs: per-frequency rope divisors (no Hugging Face counterpart).
    case ropeFrequencies
    case layer(Int, LayerTensor)

    /// Per-layer tensors.
    public enum LayerTensor: String, CaseIterable, Hashable, Sendable {
        case attentionNorm, query, key, value, attentionOutput
        case queryBias, keyBias, valueBias
        case ffnNorm, gate, up, down
        /// Per-head RMSNorm weights of q and k (qwen3, gemma3) [D].
        case queryNorm, keyNorm
        /// Norms of the attention's and the MLP's output before the residual add (gemma2, gemma3) [C].
        case attentionPostNorm, ffnPostNorm

        var gguf: String {
            switch self {
            case .attentionNorm: return "attn_norm.weight"
            case .query: return "attn_q.weight"
            case .key: return "attn_k.weight"
            case .value: return "attn_v.weight"
            case .attentionOutput: return "attn_output.weight"
            case .queryBias: return "attn_q.bias"
            case .keyBias: return "attn_k.bias"
            case .valueBias: return "attn_v.bias"
            case .ffnNorm: return "ffn_norm.weight"
            case .gate: return "ffn_gate.weight"
            case .up: return "ffn_up.weight"
            case .down: return "ffn_down.weight"
            case .queryNorm: return "attn_q_norm.weight"
            case .keyNorm: return "attn_k_norm.weight"
            case .attentionPostNorm: return "post_attention_norm.weight"
            case .ffnPostNorm: return "post_ffw_norm.weight"
            }
        }

        /// The name in a Hugging Face checkpoint of `architecture`: gemma's `post_attention_layernorm`
        /// is the attention's output norm, LLaMA's the MLP's input norm.
        func huggingFace(in architecture: ModelConfig.Architecture) -> String {
            switch (self, architecture) {
            case (.ffnNorm, .gemma2), (.ffnNorm, .gemma3): return "pre_feedforward_layernorm.weight"
            case (.attentionPostNorm, _): return "post_attention_layernorm.weight"
            default: return huggingFace
            }
        }

        private var huggingFace: String {
            switch self {
            case .attentionNorm: return "input_layernorm.weight"
            case .query: return "self_attn.q_proj.weight"
            case .key: return "self_attn.k_proj.weight"
            case .value: return "self_attn.v_proj.weight"
            case .attentionOutput: return "self_attn.o_proj.weight"
            case .queryBias: return "self_attn.q_proj.bias"
            case .keyBias: return "self_attn.k_proj.bias"
            case .valueBias: return "self_attn.v_proj.bias"
            case .ffnNorm: return "post_attention_layernorm.weight"
            case .gate: return "mlp.gate_proj.weight"
            case .up: return "mlp.up_proj.weight"
            case .down: return "mlp.down_proj.weight"
            case .queryNorm: return "self_attn.q_norm.weight"
            case .keyNorm: return "self_attn.k_norm.weight"
            case .attentionPostNorm: return "post_attention_layernorm.weight"
            case .ffnPostNorm: return "post_feedforward_layernorm.weight"
            }
        }

        /// The seven linear projections that pruning and LoRA act on.
        public static let projections: [LayerTensor] = [.query, .key, .value, .attentionOutput, .gate, .up, .down]
    }

    /// A norm's weight (Hugging Face gemma stores these as w for a norm that multiplies by 1 + w).
    public var isNormWeight: Bool {
        switch self {
        case .outputNorm: return true
        case .layer(_, let tensor): return [.attentionNorm, .ffnNorm, .queryNorm, .keyNorm, .attentionPostNorm, .ffnPostNorm].contains(tensor)
        default: return false
        }
    }

    public var ggufName: String {
        switch self {
        case .tokenEmbedding: return "token_embd.weight"
        case .outputNorm: return "output_norm.weight"
        case .output: return "output.weight"
        case .ropeFrequencies: return "rope_freqs.weight"
        case .layer(let index, let tensor): return "blk.\(index).\(tensor.gguf)"
        }
    }

    /// The Hugging Face name in a LLaMA-named checkpoint, or nil for GGUF-only tensors.
    public var huggingFaceName: String? { huggingFaceName(in: .llama) }

    /// The Hugging Face name in a checkpoint of `architecture`, or nil for GGUF-only tensors.
    public func huggingFaceName(in architecture: ModelConfig.Architecture) -> String? {
        switch self {
        case .tokenEmbedding: return "model.embed_tokens.weight"
        case .outputNorm: return "model.norm.weight"
        case .output: return "lm_head.weight"
        case .ropeFrequencies: return nil
        case .layer(let index, let tensor): return "model.layers.\(index).\(tensor.huggingFace(in: architecture))"
        }
    }

    /// The role of a GGUF tensor name, or nil for a name that is not part of the decoder.
    public init?(ggufName name: String) {
        switch name {
        case "token_embd.weight": self = .tokenEmbedding
        case "output_norm.weight": self = .outputNorm
        case "output.weight": self = .output
        case "rope_freqs.weight": self = .ropeFrequencies
        default:
            guard let (index, rest) = TensorRole.splitLayer(name, prefix: "blk."),
                  let tensor = LayerTensor.allCases.first(where: { $0.gguf == rest }) else { return nil }
            self = .layer(index, tensor)
        }
    }

    /// The role of a Hugging Face tensor name in a checkpoint of `architecture` (LLaMA's naming when
    /// not given), or nil for a name that is not part of the decoder.
    public init?(huggingFaceName name: String, architecture: ModelConfig.Architecture = .llama) {
        switch name {
        case "model.embed_tokens.weight": self = .tokenEmbedding
        case "model.norm.weight": self = .outputNorm
        case "lm_head.weight": self = .output
        default:
            guard let (index, rest) = TensorRole.splitLayer(name, prefix: "model.layers."),
                  let tensor = LayerTensor.allCases.first(where: { $0.huggingFace(in: architecture) == rest }) else { return nil }
            self = .layer(index, tensor)
        }
    }

    /// "blk.12.attn_q.weight" → (12, "attn_q.weight").
    private static func splitLayer(_ name: String, prefix: String) -> (Int, String)? {
        guard name.hasPrefix(prefix) else { return nil }
        let tail = name.dropFirst(prefix.count)
        guard let dot = tail.firstIndex(of: "."), let index = Int(tail[..<dot]), index >= 0,
              String(index) == tail[..<dot] else { return nil }
        return (index, String(tail[tail.index(after: dot)...]))
    }
}
