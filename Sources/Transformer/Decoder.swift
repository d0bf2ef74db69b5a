import Kernels
import ModelFormats

/// The decoder of every family losad runs (llama, mistral, qwen2/3, gemma2/3, phi3; transformers'
/// modeling files and llama.cpp's graphs are the references):
///
///     x = embed(tokens) · embeddingScale
///     for each layer: x = layer(x)                      (`DecoderLayer`, the one block)
///     hidden = rmsNorm(x)
///     logits = softcap(hidden · outputᵀ)
///
/// Shapes: tokens [B][T]; x, hidden [B·T, C]; output [V, C]; logits [B, T, V].
/// `forward` stops at the final hidden states so that a loss can use
/// `chunkedCrossEntropy` without materialising [B·T, V] logits.
public struct Decoder: Sendable {
    public let weights: DecoderWeights
    public var config: ModelConfig { weights.config }

    public init(weights: DecoderWeights) {
        self.weights = weights
    }

    /// Loads `checkpoint`'s weights.
    public init(checkpoint: Checkpoint) throws {
        self.init(weights: try DecoderWeights(checkpoint: checkpoint))
    }

    /// Activation buffers for batches of up to `batch` windows of exactly `tokens` tokens.
    public func makeWorkspace(batch: Int, tokens: Int) -> DecoderWorkspace {
        DecoderWorkspace(weights: weights, batch: batch, tokens: tokens)
    }

    /// The final (normed) hidden states of `tokens` [B][T] as a view [B·T, C] of the workspace,
    /// valid until the workspace is used again. B ≤ the workspace's batch, T = its tokens.
    public func forward(_ tokens: [[Int32]], workspace: DecoderWorkspace) -> Tensor {
        let batch = tokens.count, t = workspace.tokens, n = batch * t
        precondition(batch >= 1 && batch <= workspace.batchCapacity,
                     "decoder: \(batch) windows for a workspace of \(workspace.batchCapacity)")
        let x = workspace.residual.slice(0..<n)

        embed(tokens, into: x, tokensPerWindow: t)
        let (activations, scratch) = workspace.layerBuffers(rows: n)
        workspace.positions.withUnsafeBufferPointer { positions in
            for (l, layer) in weights.layers.enumerated() {
                DecoderLayer.forward(layer, index: l, config: config, layout: weights.rotaryLayout,
                                     rotary: workspace.rotary.table(forLayer: l), positions: positions.baseAddress!,
                                     residual: x, keys: .windows(batch: batch, tokens: t), activations: activations,
                                     scratch: scratch, adapters: nil)
            }
        }
        // The final norm overwrites the residual stream: nothing reads it afterwards.
        finalNorm(x, into: x)
        return x
    }

    /// The final logit cap of the family (gemma2), as the loss kernels take it.
    public var finalLogitSoftcap: Float? { config.block.finalLogitSoftcap.map { Float($0) } }

    /// logits = softcap(hidden · outputᵀ).   hidden [N, C]; logits [N, V] (any shape with N·V values)
    public func head(_ hidden: Tensor, into logits: Tensor, scratch: CompressedMatmulScratch? = nil) {
        weights.output.apply(hidden, into: logits.reshaped([hidden.rowCount, config.vocabSize]), scratch: scratch)
        if let cap = finalLogitSoftcap { softcapForward(logits.pointer, count: hidden.rowCount * config.vocabSize, cap: cap) }
    }

    /// The logits [B, T, V] of `tokens` [B][T] (every window the same length), in new buffers.
    public func logits(tokens: [[Int32]]) -> Tensor {
        let t = tokens.first?.count ?? 0
        let workspace = makeWorkspace(batch: tokens.count, tokens: t)
        let hidden = forward(tokens, workspace: workspace)
        let logits = Tensor(zeros: [tokens.count, t, config.vocabSize])
        head(hidden, into: logits, scratch: workspace.matmulScratch)
        return logits
    }

    /// x[b·T + t] = embedding[tokens[b][t]] · embeddingScale.   x [B·T, C]
    func embed(_ tokens: [[Int32]], into x: Tensor, tokensPerWindow t: Int) {
        let c = config.hiddenSize, v = config.vocabSize
        for (b, window) in tokens.enumerated() {
            precondition(window.count == t, "decoder: window \(b) has \(window.count) tokens, the workspace \(t)")
            for (i, token) in window.enumerated() {
                precondition(token >= 0 && Int(token) < v, "decoder: token \(token) at [\(b), \(i)] is outside the vocabulary of \(v)")
                weights.tokenEmbedding.copyRow(Int(token), into: x.pointer + (b * t + i) * c)
            }
        }
        if let scale = config.block.embeddingScale {
            // Gemma multiplies in the activations' dtype (Float32 here).
            let factor = Float(scale), rows = tokens.count * t
            for i in 0..<(rows * c) { x.pointer[i] *= factor }
        }
    }
}
