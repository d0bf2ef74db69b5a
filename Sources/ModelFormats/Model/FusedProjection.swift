/// A stored tensor that holds several projections' rows stacked: Phi-3's `self_attn.qkv_proj`
/// (GGUF `attn_qkv`: rows q, then k, then v) and `mlp.gate_up_proj` (GGUF `ffn_up` with 2F rows:
/// gate, then up). A checkpoint splits it into its roles when it is opened (`Checkpoint.entry(for:)`
/// names the stored tensor and the role's rows), so the engine, pruning, training and the sparse
/// kernels see the seven projections of every family; exports and the sparse file fuse them again
/// under the stored name. A row range of a row-major matrix is contiguous in every storage losad
/// reads: Float32/16 rows, GGML blocks (which run along rows) and the sparse encoding (row by row).
public enum FusedProjection: String, CaseIterable, Hashable, Sendable {
    case queryKeyValue
    case gateUp

    /// The roles whose rows it stacks, in stored order.
    public var members: [TensorRole.LayerTensor] {
        switch self {
        case .queryKeyValue: return [.query, .key, .value]
        case .gateUp: return [.gate, .up]
        }
    }

    /// Each member's rows in a model of `config`, in stored order.
    public func rowRanges(in config: ModelConfig) -> [Range<Int>] {
        let kv = config.kvHeadCount * config.headDim
        let sizes = switch self {
        case .queryKeyValue: [config.headCount * config.headDim, kv, kv]
        case .gateUp: [config.ffnSize, config.ffnSize]
        }
        var start = 0
        return sizes.map { rows in
            defer { start += rows }
            return start..<(start + rows)
        }
    }

    /// The stored shape in a model of `config`: [rows of every member, C].
    public func shape(in config: ModelConfig) -> [Int] {
        [rowRanges(in: config).last!.upperBound, config.hiddenSize]
    }

    var gguf: String {
        switch self {
        case .queryKeyValue: return "attn_qkv.weight"
        case .gateUp: return "ffn_up.weight"
        }
    }

    var huggingFace: String {
        switch self {
        case .queryKeyValue: return "self_attn.qkv_proj.weight"
        case .gateUp: return "mlp.gate_up_proj.weight"
        }
    }

    /// The fused tensors a family's checkpoints store (Phi-3: both; llama.cpp's phi3 loader also
    /// accepts separate `attn_q/k/v`, which then read as any family's).
    public static func stored(in architecture: ModelConfig.Architecture) -> [FusedProjection] {
        architecture == .phi3 ? allCases : []
    }

    /// The fused tensor that holds `tensor` in a checkpoint of `architecture`, if any.
    static func holding(_ tensor: TensorRole.LayerTensor, in architecture: ModelConfig.Architecture) -> FusedProjection? {
        stored(in: architecture).first { $0.members.contains(tensor) }
    }
}
