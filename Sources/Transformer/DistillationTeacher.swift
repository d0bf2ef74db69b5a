import Kernels
import ModelFormats

/// The dense model that distillation learns from, run forward alongside each training step on the same
/// windows: its final normed hidden states (the KL term multiplies them by the shared LM head chunk by chunk,
/// so its [N, V] logits never exist at once) and every block's output (the hidden-state term).
///
/// Why alongside rather than cached: a forward of the plain decoder costs about a third of a training step
/// (no adapters, no backward), while a cache would have to hold, per window, every block's output
/// (L · T · C floats: 18 MB for the 135M demo model at T = 256) for the hidden-state term, or top-k logits
/// that only approximate the KL. With a budget of tens of thousands of tokens each window is trained on about
/// once, so a cache would be filled by the same forwards and then read once.
///
/// Memory: its weights as the caller gives them (the job passes the input's projections read in place, decoded one
/// layer at a time: `FrozenLayerExpansion`) and a workspace with one layer's intermediates (`.recompute`) and the
/// block boundaries: all L + 1 of them [L + 1, N, C] when the hidden-state term needs every block's output, one
/// buffer the blocks run in place on otherwise.
public final class DistillationTeacher {
    public let decoder: Decoder
    let workspace: LoRATrainingWorkspace
    /// Whether `forward` returns every block's output (the hidden-state term reads them).
    let keepsBlockOutputs: Bool

    /// A teacher with `weights` (never modified) for batches of up to `batch` windows of `tokens` tokens.
    public init(weights: DecoderWeights, batch: Int, tokens: Int, chunkRows: Int = 128, keepsBlockOutputs: Bool = true) {
        decoder = Decoder(weights: weights)
        self.keepsBlockOutputs = keepsBlockOutputs
        workspace = LoRATrainingWorkspace(weights: weights, batch: batch, tokens: tokens, chunkRows: chunkRows, policy: .recompute,
                                          boundaries: keepsBlockOutputs ? nil : 1)
    }

    /// The floats of a teacher's workspace (memory estimates; the weights are counted by the caller).
    public static func workspaceFloats(config: ModelConfig, batch: Int, tokens: Int, chunkRows: Int = 128,
                                       keepsBlockOutputs: Bool = true) -> Int {
        LoRATrainingWorkspace.shapes(config: config, batch: batch, tokens: tokens, chunkRows: chunkRows, policy: .recompute,
                                     boundaries: keepsBlockOutputs ? nil : 1)
            .map { $0.1.reduce(1, *) }.reduce(0, +)
    }

    /// Runs the teacher on `tokens` [B][T]: its final normed hidden states [B·T, C] and, when it keeps them, the
    /// output of every block, `blockOutputs[l]` [B·T, C] for l in 0..<L (else none). Valid until the next call.
    func forward(_ tokens: [[Int32]], stopIf: () -> Bool) throws(TransformerError) -> (hidden: Tensor, blockOutputs: [Tensor]) {
        let n = tokens.count * workspace.tokens
        if keepsBlockOutputs {
            let hidden = try decoder.adaptedForward(tokens, adapters: nil, workspace: workspace, stopIf: stopIf)
            return (hidden, (1...decoder.config.layerCount).map { workspace.layerInputs[$0].slice(0..<n) })
        }
        // The same blocks in the same order, each in place on one buffer.
        let x = workspace.layerInputs[0].slice(0..<n)
        decoder.embed(windows: tokens, into: x, workspace: workspace)
        for l in 0..<decoder.config.layerCount {
            if stopIf() { throw .interrupted }
            decoder.runLayer(l, residual: x, batch: tokens.count, workspace: workspace)
        }
        let hidden = workspace("hidden", rows: n)
        decoder.finalNorm(x, into: hidden)
        return (hidden, [])
    }

    /// The teacher's scratch for one chunk of logits [chunkRows, V].
    var logitScratch: Tensor { workspace("logits") }
}
