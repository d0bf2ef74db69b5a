import Kernels
import ModelFormats

extension DecoderWeights {
    /// Loads `checkpoint` for inference with its matrices read in place (`Checkpoint.inPlaceMatrices`:
    /// sparse tensors and quantised blocks multiplied where the mapped file holds them) and only the
    /// rest — norms, biases, matrices in a type without a kernel — converted to Float32.
    public init(readingInPlace checkpoint: Checkpoint) throws {
        let matrices = try checkpoint.inPlaceMatrices()
        var tensors: [TensorRole: Tensor] = [:]
        for entry in checkpoint.roleEntries {
            guard let role = entry.role, matrices[role] == nil else { continue }
            tensors[role] = try checkpoint.tensor(role)
        }
        try self.init(config: checkpoint.config, tensors: tensors, matrices: matrices)
    }

    /// What the weights are kept as, for reports: e.g. "sparse s8 50.0%, head Q8_0" or "Q4_1, head Q8_0".
    public var formSummary: String {
        func form(_ weight: LinearWeight) -> String {
            switch weight {
            case .dense: return "F32"
            case .compressed(let matrix as SparseMatrix): return "sparse \(matrix.kind.rawValue)"
            case .compressed(let matrix as QuantizedMatrix): return matrix.type.description
            case .compressed: return "compressed"
            }
        }
        let projections = layers.flatMap { [$0.query, $0.key, $0.value, $0.attentionOutput, $0.gate, $0.up, $0.down] }
        var counts: [String: Int] = [:]
        for p in projections { counts[form(p), default: 0] += 1 }
        let main = counts.max { $0.value < $1.value }?.key ?? "none"
        var text = main
        if main.hasPrefix("sparse") {
            let stored = projections.reduce(0.0) { total, p in
                if case .compressed(let m as SparseMatrix) = p { return total + m.density * Double(m.rows * m.cols) }
                return total
            }
            let all = projections.reduce(0) { $0 + $1.rows * $1.cols }
            text += String(format: " %.1f%%", 100 * (1 - stored / Double(all)))
        }
        if counts.count > 1 { text += " (+\(counts.count - 1) other)" }
        return text + ", head \(form(output))"
    }
}

extension Decoder {
    /// A decoder for inference over `checkpoint` with its matrices read in place (no Float32 copy).
    public init(readingInPlace checkpoint: Checkpoint) throws {
        self.init(weights: try DecoderWeights(readingInPlace: checkpoint))
    }

    /// What the weights are kept as (`DecoderWeights.formSummary`).
    public var weightFormSummary: String { weights.formSummary }
}
