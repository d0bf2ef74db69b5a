import Foundation
import Kernels
import ModelFormats
import Transformer

/// The model's projections as the job handles them: snapshots for the pruned-only baseline, the tensors the
/// export replaces, and the zeros counted before and after export.
extension CompressionJob {
    func snapshotProjections(_ weights: DecoderWeights) -> [Tensor] {
        weights.layers.flatMap { layer in SparseLoRA.Projection.allCases.map { SparseLoRA.weight(layer, $0).copy() } }
    }

    func restoreProjections(_ weights: DecoderWeights, from snapshot: [Tensor]) {
        let targets = weights.layers.flatMap { layer in SparseLoRA.Projection.allCases.map { SparseLoRA.weight(layer, $0) } }
        for (target, saved) in zip(targets, snapshot) { target.assign(saved) }
    }

    /// The dense teacher's tensors: `tensors` themselves, except fresh copies of the seven projections of every layer.
    static func teacherTensors(_ tensors: [TensorRole: Tensor], config: ModelConfig) -> [TensorRole: Tensor] {
        var teacher = tensors
        for l in 0..<config.layerCount {
            for p in SparseLoRA.Projection.allCases {
                if let tensor = tensors[.layer(l, p.layerTensor)] { teacher[.layer(l, p.layerTensor)] = tensor.copy() }
            }
        }
        return teacher
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
