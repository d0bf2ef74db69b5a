import Kernels
import ModelFormats

/// Frozen projections kept in their stored form (quantised blocks or sparse rows read in place from the mapped
/// file) and decoded to Float32 one layer at a time, only while that layer computes: a training or calibration
/// pass over such weights holds one layer's Float32 projections, not the whole model's. The model being compressed,
/// when it is kept compactly (`PrunedProjection`: the input's matrix, a mask, the adapters while merged), is read
/// the same way.
///
/// Why decode rather than call the compressed kernels: those quantise the activations to 8 bits (inference's
/// trade), while the dense reference of a compression job — the distillation teacher, the dense features — must
/// be the Float32 model the job starts from. Decoding gives exactly the values `Checkpoint.tensor` loads, so a pass
/// over expanded weights computes what it would over a Float32 copy, at the cost of one decode per layer per pass.
///
/// Shapes: one buffer [out, in] per projection of the model's shape (`SparseLoRA.shape`), ≈ 3.5 M floats for
/// the demo model, 200 M (0.8 GB) for a 7B LLaMA shape.
public final class FrozenLayerExpansion {
    private let buffers: [SparseLoRA.Projection: Tensor]
    /// What each buffer holds: (layer, the matrix's version) — a calibration pass runs each layer on several chunks in
    /// a row, so the next chunk reuses the decoding until pruning or merging changes a `PrunedProjection`.
    private var holds: [SparseLoRA.Projection: (layer: Int, version: Int)] = [:]

    /// Buffers for `weights`; nil when every projection is already Float32 (nothing to expand).
    public init?(weights: DecoderWeights) {
        let compressed = weights.layers.contains { layer in
            SparseLoRA.Projection.allCases.contains { if case .compressed = layer.projection($0) { true } else { false } }
        }
        guard compressed else { return nil }
        var buffers: [SparseLoRA.Projection: Tensor] = [:]
        for p in SparseLoRA.Projection.allCases {
            let shape = SparseLoRA.shape(of: p, config: weights.config)
            buffers[p] = Tensor(zeros: [shape.out, shape.in])
        }
        self.buffers = buffers
    }

    /// The floats the buffers of a model with `config` hold (memory estimates).
    public static func floatCount(config: ModelConfig) -> Int {
        SparseLoRA.Projection.allCases.reduce(0) { n, p in
            let shape = SparseLoRA.shape(of: p, config: config)
            return n + shape.out * shape.in
        }
    }

    /// Marks the buffers as holding layer l's current `PrunedProjection` versions (see `LoRATrainingWorkspace.keepExpansion`).
    func keep(layer l: Int, of weights: DecoderWeights) {
        for p in SparseLoRA.Projection.allCases {
            guard case .compressed(let matrix) = weights.layers[l].projection(p), let held = holds[p], held.layer == l else { continue }
            holds[p] = (l, (matrix as? PrunedProjection)?.version ?? 0)
        }
    }

    /// Layer l of `weights` with every compressed projection replaced by its Float32 decoding (valid until
    /// another layer is expanded or the matrix changes); Float32 projections are passed through untouched. The
    /// input file's pages a decoding read are let go afterwards, so a pass over a large model holds one layer's.
    public func layer(_ l: Int, of weights: DecoderWeights) -> LayerWeights {
        let stored = weights.layers[l]
        func expanded(_ p: SparseLoRA.Projection) -> LinearWeight {
            guard case .compressed(let matrix) = stored.projection(p) else { return stored.projection(p) }
            let buffer = buffers[p]!
            precondition(buffer.shape == [matrix.rows, matrix.cols],
                         "frozen layer expansion: \(p) of layer \(l) is \(matrix.rows)×\(matrix.cols), expected \(buffer.shape)")
            let version = (matrix as? PrunedProjection)?.version ?? 0
            if let held = holds[p], held.layer == l, held.version == version { return .dense(buffer) }
            matrix.decodeAll(into: buffer.pointer)
            holds[p] = (l, version)
            return .dense(buffer)
        }
        return LayerWeights(
            attentionNorm: stored.attentionNorm,
            query: expanded(.query), key: expanded(.key), value: expanded(.value),
            attentionOutput: expanded(.attentionOutput),
            queryBias: stored.queryBias, keyBias: stored.keyBias, valueBias: stored.valueBias,
            ffnNorm: stored.ffnNorm, gate: expanded(.gate), up: expanded(.up), down: expanded(.down),
            queryNorm: stored.queryNorm, keyNorm: stored.keyNorm,
            attentionPostNorm: stored.attentionPostNorm, ffnPostNorm: stored.ffnPostNorm)
    }
}
