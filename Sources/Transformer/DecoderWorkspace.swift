import Kernels
import ModelFormats

/// The activation buffers of one forward pass over a [B, T] batch of windows,
/// named views of one allocation (`NamedBuffers`), reused by every layer and
/// every call with the same (or a smaller) batch.
///
/// Shapes (N = B·T rows): residual, normed [N, C]; query, attention [N, H·D];
/// key, value [N, Hkv·D]; scores [H/Hkv, T, T] (one window and kv head at a time);
/// gate, up [N, F]; sublayerOutput, sublayerNormed [N, C] (post-norm families);
/// positions [N]; the rotary tables cover positions 0..<T.
public final class DecoderWorkspace {
    /// Windows per batch (B) the buffers hold.
    public let batchCapacity: Int
    /// Tokens per window (T).
    public let tokens: Int
    let buffers: NamedBuffers
    var residual: Tensor { buffers["residual"] }
    /// Each row's position in its window: 0..<T repeated B times.
    let positions: [Int32]
    let rotary: RotaryTables
    /// Floats held by all the buffers together.
    public var floatCount: Int { buffers.floatCount }
    /// Activation and panel scratch of the compressed-weight products.
    let matmulScratch = CompressedMatmulScratch()

    /// Buffers for `batch` windows of `tokens` tokens of a decoder with `weights`.
    public init(weights: DecoderWeights, batch: Int, tokens: Int) {
        precondition(batch > 0 && tokens > 0, "workspace: batch \(batch) × \(tokens) tokens")
        let c = weights.config, n = batch * tokens
        buffers = NamedBuffers(NamedBuffers.inferenceLayerShapes(config: c, rows: n)
                               + [("scores", [c.headCount / c.kvHeadCount, tokens, tokens])])
        batchCapacity = batch
        self.tokens = tokens
        positions = (0..<n).map { Int32($0 % tokens) }
        rotary = RotaryTables(weights: weights, positionCount: tokens)
    }

    /// The activations and scratch of a pass over the first `rows` rows.
    func layerBuffers(rows: Int) -> (LayerActivations, LayerScratch) {
        (buffers.inferenceActivations(rows: rows), LayerScratch(scores: buffers["scores"], matmul: matmulScratch))
    }
}
