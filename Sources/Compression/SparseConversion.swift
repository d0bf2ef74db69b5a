import Kernels
import ModelFormats

/// Writes losad's sparse model file of a model that is already pruned (its projections' zeros are the
/// pruned weights) — or, for speed tests of models nobody pruned, after pruning each projection row
/// by magnitude. No calibration and no recovery: `losad compress` is the way to a good sparse model.
public enum SparseConversion {
    /// Writes `checkpoint`'s sparse model file at `path`: the seven projections of every layer in the
    /// sparse encoding with `values`, every other tensor as the source stores it.
    public static func write(_ checkpoint: Checkpoint, to path: String, values: SparseValueKind,
                             magnitudeSparsity: Double? = nil) throws -> SparseModelWriteResult {
        var weights: [TensorRole: Tensor] = [:]
        var sparse: Set<TensorRole> = []
        for entry in checkpoint.roleEntries {
            guard let role = entry.role, role.isMatrix, case .layer = role else { continue }
            let weight = try checkpoint.tensor(role)
            if let magnitudeSparsity { try pruneMagnitude(weight, sparsity: magnitudeSparsity, pattern: .unstructured) }
            weights[role] = weight
            sparse.insert(role)
        }
        return try SparseModelWriter(source: checkpoint, valueKind: values).write(weights: weights, sparse: sparse, to: path)
    }
}
