import Foundation
import Kernels
import ModelFormats
import Transformer

/// The model's projections as the job handles them: the dense ones re-read after the pruned-only baseline, the
/// distillation teacher's read in place, the tensors the export replaces, and the zeros counted before and after export.
extension CompressionJob {
    /// A Float32 copy of every projection (the s4 sparse output rounds the merged model in place, then puts it back).
    func snapshotProjections(_ weights: DecoderWeights) -> [Tensor] {
        weights.layers.flatMap { layer in SparseLoRA.Projection.allCases.map { SparseLoRA.weight(layer, $0).copy() } }
    }

    func restoreProjections(_ weights: DecoderWeights, from snapshot: [Tensor]) {
        let targets = weights.layers.flatMap { layer in SparseLoRA.Projection.allCases.map { SparseLoRA.weight(layer, $0) } }
        for (target, saved) in zip(targets, snapshot) { target.assign(saved) }
    }

    /// Puts the input's projections back into `weights` (after the pruned-only baseline pruned them), decoded
    /// from the mapped file one tensor at a time rather than from a Float32 snapshot of them all.
    func restoreProjections(_ weights: DecoderWeights, from checkpoint: Checkpoint) throws {
        for (l, layer) in weights.layers.enumerated() {
            for p in SparseLoRA.Projection.allCases {
                SparseLoRA.weight(layer, p).assign(try checkpoint.tensor(.layer(l, p.layerTensor)))
            }
        }
    }

    /// The dense teacher of distillation: the student's `tensors` for every role the job never writes (embeddings,
    /// norms, head), and the input's projections as the mapped file stores them (`Checkpoint.inPlaceMatrices`,
    /// decoded one layer at a time while the teacher runs: `FrozenLayerExpansion`). A projection in a type without
    /// a decoder here (F16/BF16/F32 tensors) is copied as Float32, since pruning overwrites the student's.
    static func teacherWeights(checkpoint: Checkpoint, tensors: [TensorRole: Tensor]) throws -> DecoderWeights {
        let config = checkpoint.config, stored = try checkpoint.inPlaceMatrices()
        var teacher = tensors, matrices: [TensorRole: any CompressedMatrix] = [:]
        for l in 0..<config.layerCount {
            for p in SparseLoRA.Projection.allCases {
                let role = TensorRole.layer(l, p.layerTensor)
                if let matrix = stored[role] {
                    matrices[role] = matrix
                    teacher[role] = nil
                } else if let tensor = tensors[role] {
                    teacher[role] = tensor.copy()
                }
            }
        }
        return try DecoderWeights(config: config, tensors: teacher, matrices: matrices)
    }

    /// Bytes of Float32 projections the teacher copies for `checkpoint` (those stored in a type it cannot read in place).
    static func teacherCopiedProjectionBytes(checkpoint: Checkpoint) throws -> Int {
        let stored = try checkpoint.inPlaceMatrices(), config = checkpoint.config
        var bytes = 0
        for l in 0..<config.layerCount {
            for p in SparseLoRA.Projection.allCases where stored[.layer(l, p.layerTensor)] == nil {
                let shape = SparseLoRA.shape(of: p, config: config)
                bytes += shape.out * shape.in * 4
            }
        }
        return bytes
    }

    /// The seven projections of every layer by tensor role, for export.
    func projectionTensors(_ weights: DecoderWeights) -> [TensorRole: Tensor] {
        var tensors: [TensorRole: Tensor] = [:]
        for (l, layer) in weights.layers.enumerated() {
            for p in SparseLoRA.Projection.allCases { tensors[.layer(l, p.layerTensor)] = SparseLoRA.weight(layer, p) }
        }
        return tensors
    }

    struct ZeroCount {
        var zeros = 0
        var total = 0
        var perLayer: [Double] = []
        /// The zero positions of every projection (layer-major, projections in order), one bit per weight.
        var masks: [[UInt64]] = []
    }

    func projectionZeros(_ weights: DecoderWeights) -> ZeroCount {
        var count = ZeroCount()
        for layer in weights.layers {
            var layerZeros = 0, size = 0
            for p in SparseLoRA.Projection.allCases {
                let w = SparseLoRA.weight(layer, p)
                var bits = [UInt64](repeating: 0, count: (w.count + 63) / 64)
                for i in 0..<w.count where w.pointer[i] == 0 {
                    bits[i >> 6] |= 1 << UInt64(i & 63)
                    layerZeros += 1
                }
                count.masks.append(bits)
                size += w.count
            }
            count.zeros += layerZeros
            count.total += size
            count.perLayer.append(Double(layerZeros) / Double(size))
        }
        return count
    }
}

extension SparseLoRA.Projection {
    /// The tensor role of this projection in a layer.
    var layerTensor: TensorRole.LayerTensor {
        switch self {
        case .query: return .query
        case .key: return .key
        case .value: return .value
        case .attentionOutput: return .attentionOutput
        case .gate: return .gate
        case .up: return .up
        case .down: return .down
        }
    }
}
