import Kernels

/// Global gradient-norm clipping with the semantics of PyTorch's `torch.nn.utils.clip_grad_norm_`
/// (norm type 2): the whole gradient arena is one vector g, and
///
///     c = min(1, max_norm / (‖g‖₂ + 10⁻⁶)),     g ← c·g
///
/// with ‖g‖₂ summed in Double and rounded to Float, then c formed in Float as PyTorch forms it from
/// its Float norm. **[ours]** A NaN or infinite norm leaves the gradients as they are (PyTorch would
/// multiply them all by NaN); the caller sees the norm and skips the step.
///
/// Shapes: gradients [N], every element counted — inactive LoRA rank components included, which hold
/// zero because the backward never writes them and the caller zeroes the arena before each step.
public enum GradientClipping {
    /// The reference's maximum norm (LOSA.md, "Fine-tune").
    public static let defaultMaximumNorm = 0.3

    /// ‖g‖₂ of the arena, summed in Double.
    public static func norm(_ gradients: TensorStorage) -> Double {
        let g = gradients.base
        var sum = 0.0
        for i in 0..<gradients.count { sum += Double(g[i]) * Double(g[i]) }
        return sum.squareRoot()
    }

    /// Scales the gradients so their norm is at most `maximumNorm`; returns the norm before clipping.
    @discardableResult
    public static func clip(_ gradients: TensorStorage, maximumNorm: Double = defaultMaximumNorm) -> Double {
        precondition(maximumNorm > 0 && maximumNorm.isFinite, "gradient clipping: maximum norm \(maximumNorm)")
        let total = norm(gradients)
        guard total.isFinite else { return total }
        let coefficient = min(1, Float(maximumNorm) / (Float(total) + Float(1e-6)))
        // PyTorch multiplies even by 1 (no branch on the device); skipping it is bit-identical.
        guard coefficient < 1 else { return total }
        let g = gradients.base
        WorkerPool.shared.parallelFor(gradients.count, minimumChunk: 1 << 15) { range in
            for i in range { g[i] *= coefficient }
        }
        return total
    }
}
