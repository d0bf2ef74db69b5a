import Kernels
import ModelFormats

// Running the decoder one block at a time, with the inputs of the block's seven projections
// exposed: what layer-wise calibration needs (pruning statistics from each projection's inputs,
// layer inputs for RMI, layer outputs for reconstruction errors), with each block fed whatever
// the caller chooses — e.g. the pruned output of the block before (sequential calibration).
//
// The block is `DecoderLayer.forward` on the training workspace, so it is the same computation as
// the inference forward and the training forward.

extension Decoder {
    /// x ← embed(tokens).   tokens [B][T] (T = the workspace's tokens); x [B·T, C]
    public func embed(windows tokens: [[Int32]], into x: Tensor, workspace w: LoRATrainingWorkspace) {
        precondition(tokens.count <= w.batchCapacity && x.rowCount == tokens.count * w.tokens,
                     "decoder: \(tokens.count) windows into \(x.shape) for a workspace of \(w.batchCapacity) × \(w.tokens)")
        embed(tokens, into: x, tokensPerWindow: w.tokens)
    }

    /// x ← block l(x), in place, with `adapters` (nil: the plain block). Afterwards the workspace holds the
    /// block's projection inputs (`LoRATrainingWorkspace.projectionInput`) until it is used again.
    ///
    /// x [B·T, C], B ≤ the workspace's batch.
    public func runLayer(_ l: Int, residual x: Tensor, batch: Int, adapters: SparseLoRA? = nil,
                         workspace w: LoRATrainingWorkspace) {
        precondition((0..<config.layerCount).contains(l) && batch >= 1 && batch <= w.batchCapacity
                     && x.rowCount == batch * w.tokens,
                     "decoder: layer \(l) on \(x.shape) (batch \(batch)) with a workspace of \(w.batchCapacity) × \(w.tokens)")
        trainingLayerForward(l, residual: x, batch: batch, adapters: adapters, workspace: w)
    }

    /// hidden ← rmsNorm(x) with the final norm (hidden may be x).   x, hidden [N, C]
    public func finalNorm(_ x: Tensor, into hidden: Tensor) {
        rmsNorm(x, weight: weights.outputNorm, epsilon: Float(config.rmsNormEpsilon), into: hidden)
    }
}

extension LoRATrainingWorkspace {
    /// The input rows of projection `p` in the last run of layer l: normed1 [N, C] for q, k, v;
    /// attention [N, H·D] for o; normed2 [N, C] for gate, up; hidden2 [N, F] for down.
    public func projectionInput(_ p: SparseLoRA.Projection, layer l: Int, rows: Int) -> Tensor {
        switch p {
        case .query, .key, .value: return saved("normed1", layer: l, rows: rows)
        case .attentionOutput: return saved("attention", layer: l, rows: rows)
        case .gate, .up: return saved("normed2", layer: l, rows: rows)
        case .down: return saved("hidden2", layer: l, rows: rows)
        }
    }
}
