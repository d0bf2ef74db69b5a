import Kernels
import ModelFormats

/// The activation buffers of one forward pass over a [B, T] batch of windows,
/// named views of one allocation sized once by `DecoderWorkspace.layout`, and
/// reused by every layer and every call with the same (or a smaller) batch.
///
/// Shapes (N = B·T rows): residual, normed [N, C]; query, attention [N, H·D];
/// key, value [N, Hkv·D]; scores [H/Hkv, T, T] (one window and kv head at a time);
/// gate, up [N, F]; positions [N]; the rotary table covers positions 0..<T.
public final class DecoderWorkspace {
    /// Windows per batch (B) the buffers hold.
    public let batchCapacity: Int
    /// Tokens per window (T).
    public let tokens: Int
    let residual: Tensor
    let normed: Tensor
    let query: Tensor
    let key: Tensor
    let value: Tensor
    let attention: Tensor
    let scores: Tensor
    let gate: Tensor
    let up: Tensor
    /// Each row's position in its window: 0..<T repeated B times.
    let positions: [Int32]
    let rotary: RotaryTable
    /// Floats held by all the buffers together.
    public let floatCount: Int
    /// Activation and panel scratch of the compressed-weight products.
    let matmulScratch = CompressedMatmulScratch()

    /// Buffers for `batch` windows of `tokens` tokens of a decoder with `weights`.
    public init(weights: DecoderWeights, batch: Int, tokens: Int) {
        precondition(batch > 0 && tokens > 0, "workspace: batch \(batch) × \(tokens) tokens")
        let c = weights.config
        let n = batch * tokens
        let shapes: [[Int]] = [
            [n, c.hiddenSize], [n, c.hiddenSize],
            [n, c.headCount * c.headDim], [n, c.kvHeadCount * c.headDim], [n, c.kvHeadCount * c.headDim],
            [n, c.headCount * c.headDim], [c.headCount / c.kvHeadCount, tokens, tokens],
            [n, c.ffnSize], [n, c.ffnSize],
        ]
        // One allocation; each view starts on a 64-byte boundary.
        let offsets = shapes.reduce(into: [0]) { offsets, shape in
            let count = shape.reduce(1, *)
            offsets.append(offsets.last! + (count + 15) / 16 * 16)
        }
        let storage = TensorStorage(count: offsets.last!)
        let views = zip(shapes, offsets).map { Tensor(shape: $0, storage: storage, offset: $1) }
        (residual, normed, query, key, value, attention, scores, gate, up) =
            (views[0], views[1], views[2], views[3], views[4], views[5], views[6], views[7], views[8])
        batchCapacity = batch
        self.tokens = tokens
        floatCount = offsets.last!
        positions = (0..<n).map { Int32($0 % tokens) }
        rotary = RotaryTable(inverseFrequencies: weights.ropeInverseFrequencies, positionCount: tokens)
    }
}
