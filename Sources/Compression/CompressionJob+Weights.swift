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
    /// from the mapped file one tensor at a time rather than from a Float32 snapshot of them all; a compactly kept
    /// projection forgets its mask.
    func restoreProjections(_ weights: DecoderWeights, from checkpoint: Checkpoint) throws {
        for (l, layer) in weights.layers.enumerated() {
            for p in SparseLoRA.Projection.allCases {
                if case .compressed(let compact as PrunedProjection) = layer.projection(p) {
                    compact.reset()
                } else {
                    SparseLoRA.weight(layer, p).assign(try checkpoint.tensor(.layer(l, p.layerTensor)))
                }
            }
        }
    }

    /// The model to compress as a private Float32 copy of every weight, and those tensors by role. `loadWeights`
    /// converts every tensor into memory of its own (nothing aliases the mapped file), so pruning and merging may
    /// write into them; copying them again made the 1B shape's job peak at load, with two copies of its weights
    /// (9.92 GiB against a plan of 8.41).
    static func float32Student(checkpoint: Checkpoint) throws -> (DecoderWeights, [TensorRole: Tensor]) {
        let tensors = try checkpoint.loadWeights()
        return (try DecoderWeights(config: checkpoint.config, tensors: tensors), tensors)
    }

    /// The model to compress kept compactly: its projections the input's matrices read in place, each wrapped in a
    /// `PrunedProjection`; every other weight Float32 (returned by role too: the teacher shares them).
    static func compactStudent(checkpoint: Checkpoint) throws -> (DecoderWeights, [TensorRole: Tensor]) {
        let stored = try checkpoint.decodableProjections(), config = checkpoint.config
        var tensors: [TensorRole: Tensor] = [:], matrices: [TensorRole: any CompressedMatrix] = [:]
        for l in 0..<config.layerCount {
            for p in SparseLoRA.Projection.allCases {
                let role = TensorRole.layer(l, p.layerTensor)
                matrices[role] = PrunedProjection(source: stored[role]!)
            }
        }
        for entry in checkpoint.roleEntries {
            guard let role = entry.role, matrices[role] == nil else { continue }
            tensors[role] = try checkpoint.tensor(role)
        }
        return (try DecoderWeights(config: config, tensors: tensors, matrices: matrices), tensors)
    }

    /// Why the model in `checkpoint` cannot be kept compactly (nil: it can): every projection must be stored in a
    /// form decoded in place (quantised blocks, F32, F16, BF16: `Checkpoint.decodableProjections`).
    static func compactStudentRefusal(checkpoint: Checkpoint) -> String? {
        guard let stored = try? checkpoint.decodableProjections() else { return "its projections cannot be read in place" }
        for l in 0..<checkpoint.config.layerCount {
            for p in SparseLoRA.Projection.allCases where stored[.layer(l, p.layerTensor)] == nil {
                let role = TensorRole.layer(l, p.layerTensor)
                return "\(checkpoint.entry(for: role)?.name ?? "\(role)") is stored in a type losad does not decode in place"
            }
        }
        return nil
    }

    /// The dense teacher of distillation: the student's `tensors` for every role the job never writes (embeddings,
    /// norms, head), and the input's projections as the mapped file stores them (`Checkpoint.decodableProjections`:
    /// quantised blocks, F32/F16/BF16, decoded one layer at a time while the teacher runs: `FrozenLayerExpansion`). A
    /// projection in a type without a decoder here is copied as Float32, since pruning overwrites the student's.
    static func teacherWeights(checkpoint: Checkpoint, tensors: [TensorRole: Tensor]) throws -> DecoderWeights {
        let config = checkpoint.config, stored = try checkpoint.decodableProjections()
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
        let stored = try checkpoint.decodableProjections(), config = checkpoint.config
        var bytes = 0
        for l in 0..<config.layerCount {
            for p in SparseLoRA.Projection.allCases where stored[.layer(l, p.layerTensor)] == nil {
                let shape = SparseLoRA.shape(of: p, config: config)
                bytes += shape.out * shape.in * 4
            }
        }
        return bytes
    }

    /// The seven projections of every layer by tensor role, for export: the Float32 tensors, or, kept compactly,
    /// values each made when a writer reaches it.
    func projectionTensors(_ weights: DecoderWeights) -> [TensorRole: any ReplacementValues] {
        var tensors: [TensorRole: any ReplacementValues] = [:]
        for (l, layer) in weights.layers.enumerated() {
            for p in SparseLoRA.Projection.allCases {
                if case .compressed(let compact as PrunedProjection) = layer.projection(p) {
                    tensors[.layer(l, p.layerTensor)] = ProducedValues(shape: [compact.rows, compact.cols]) {
                        let values = Tensor(zeros: [compact.rows, compact.cols])
                        compact.decodeAll(into: values.pointer)
                        return values
                    }
                } else {
                    tensors[.layer(l, p.layerTensor)] = SparseLoRA.weight(layer, p)
                }
            }
        }
        return tensors
    }

    /// Calls `body` with the Float32 values of `weight`: the tensor itself, or decoded into `scratch` (≥ its size).
    func withValues<R>(of weight: LinearWeight, scratch: Tensor, _ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        switch weight {
        case .dense(let w):
            return body(UnsafeBufferPointer(start: w.pointer, count: w.count))
        case .compressed(let matrix):
            let count = matrix.rows * matrix.cols
            precondition(scratch.count >= count, "projection values: scratch \(scratch.count) for \(matrix.rows)×\(matrix.cols)")
            matrix.decodeAll(into: scratch.pointer)
            return body(UnsafeBufferPointer(start: scratch.pointer, count: count))
        }
    }

    struct ZeroCount {
        var zeros = 0
        var total = 0
        var perLayer: [Double] = []
        /// The zero positions of every projection (layer-major, projections in order), one bit per weight.
        var masks: [[UInt64]] = []
    }

    /// The zeros of every projection, Float32 or read through a scratch one projection at a time (a compactly kept
    /// model, an exported file read in place).
    func projectionZeros(_ weights: DecoderWeights) -> ZeroCount {
        var count = ZeroCount()
        let compressed = weights.layers.contains { layer in
            SparseLoRA.Projection.allCases.contains { if case .compressed = layer.projection($0) { true } else { false } }
        }
        let scratch = Tensor(zeros: [compressed ? SparseLoRA.largestProjectionCount(config: weights.config) : 0])
        for layer in weights.layers {
            var layerZeros = 0, size = 0
            for p in SparseLoRA.Projection.allCases {
                let bits = withValues(of: layer.projection(p), scratch: scratch) { w in
                    var bits = [UInt64](repeating: 0, count: (w.count + 63) / 64)
                    for i in 0..<w.count where w[i] == 0 {
                        bits[i >> 6] |= 1 << UInt64(i & 63)
                        layerZeros += 1
                    }
                    size += w.count
                    return bits
                }
                count.masks.append(bits)
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
