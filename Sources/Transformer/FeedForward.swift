import Kernels

/// The SwiGLU MLP of LLaMA (Shazeer 2020, "GLU Variants Improve Transformer"):
///
///     residual += (silu(x·Wgᵀ) ⊙ x·Wuᵀ) · Wdᵀ
///
/// Shapes: x, residual [B·T, C]; gate, up [B·T, F]; Wg, Wu [F, C]; Wd [C, F].
enum FeedForward {
    /// Adds the MLP of `input` (the normed residual) into `residual`; gate and up are workspace rows.
    static func forward(_ weights: LayerWeights, input: Tensor, residual: Tensor, gate: Tensor, up: Tensor,
                        scratch: CompressedMatmulScratch) {
        weights.gate.apply(input, into: gate, scratch: scratch)
        weights.up.apply(input, into: up, scratch: scratch)
        // silu(gate) ⊙ up, written over gate (element-wise, so in place is safe).
        swigluForward(gate: gate.pointer, up: up.pointer, out: gate.pointer, count: gate.count)
        weights.down.apply(gate, into: residual, accumulate: true, scratch: scratch)
    }
}
