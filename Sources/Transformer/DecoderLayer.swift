import Kernels
import ModelFormats

/// One pre-norm LLaMA block:
///
///     x = x + attention(rmsNorm(x))
///     x = x + mlp(rmsNorm(x))
///
/// Shapes: x [B·T, C], updated in place (both residual adds are fused into the
/// output projections' GEMMs as C += A·Bᵀ).
enum DecoderLayer {
    static func forward(_ weights: LayerWeights, config: ModelConfig, layout: RotaryLayout,
                        residual x: Tensor, batch: Int, workspace: DecoderWorkspace) {
        let n = batch * workspace.tokens, epsilon = Float(config.rmsNormEpsilon)
        let normed = workspace.normed.slice(0..<n)

        rmsNorm(x, weight: weights.attentionNorm, epsilon: epsilon, into: normed)
        Attention.forward(weights, config: config, layout: layout, input: normed, residual: x,
                          batch: batch, workspace: workspace)
        rmsNorm(x, weight: weights.ffnNorm, epsilon: epsilon, into: normed)
        FeedForward.forward(weights, input: normed, residual: x,
                            gate: workspace.gate.slice(0..<n), up: workspace.up.slice(0..<n),
                            scratch: workspace.matmulScratch)
    }
}
