import Kernels
import ModelFormats

/// The keys and values of every position decoded so far, per layer, plus the
/// activation buffers of one block of new tokens: what incremental decoding
/// (`Decoder.decode(_:cache:)`) needs, sized once when the cache is made.
///
/// Keys are stored after rotary embedding, so a cached position is never rotated again.
/// Sliding layers keep every position too and mask the old ones (`Attention.Scoring.window`).
///
/// Shapes (K = capacity, N = blockCapacity): keys, values [L][Hkv, K, D]; the block's buffers
/// as `NamedBuffers.inferenceLayerShapes` for N rows; scores [H/Hkv, N, K]; the rotary tables
/// cover positions 0..<K.
public final class KVCache {
    /// Positions the cache holds at most (K).
    public let capacity: Int
    /// Tokens one forward step processes at most (N); longer blocks are split.
    public let blockCapacity: Int
    /// Positions decoded so far; the next token goes to this position.
    public private(set) var count = 0
    let keys: [Tensor]
    let values: [Tensor]
    let buffers: NamedBuffers
    var residual: Tensor { buffers["residual"] }
    let rotary: RotaryTables
    /// Activation and panel scratch of the compressed-weight products.
    let matmulScratch = CompressedMatmulScratch()
    /// Floats held by all the buffers together.
    public var floatCount: Int { buffers.floatCount }

    /// A cache for `capacity` positions of a decoder with `weights`, decoding up to `blockCapacity` tokens per step.
    public init(weights: DecoderWeights, capacity: Int, blockCapacity: Int = 64) {
        precondition(capacity > 0 && blockCapacity > 0, "kv cache: \(capacity) positions, blocks of \(blockCapacity)")
        let c = weights.config, l = c.layerCount, n = min(blockCapacity, capacity)
        let kv = [c.kvHeadCount, capacity, c.headDim]
        let cached = (0..<l).flatMap { [("keys.\($0)", kv), ("values.\($0)", kv)] }
        buffers = NamedBuffers(cached + NamedBuffers.inferenceLayerShapes(config: c, rows: n)
                               + [("scores", [c.headCount / c.kvHeadCount, n, capacity])])
        keys = (0..<l).map { [buffers] in buffers["keys.\($0)"] }
        values = (0..<l).map { [buffers] in buffers["values.\($0)"] }
        self.capacity = capacity
        self.blockCapacity = n
        rotary = RotaryTables(weights: weights, positionCount: capacity)
    }

    /// Positions still free.
    public var remaining: Int { capacity - count }

    /// Forgets every cached position (the buffers are kept).
    public func reset() { count = 0 }

    /// Marks `tokens` more positions as cached, once every layer has stored them.
    func advance(by tokens: Int) {
        precondition(count + tokens <= capacity, "kv cache: \(count) + \(tokens) positions exceed \(capacity)")
        count += tokens
    }

    /// Copies the rows k, v [T, Hkv, D] into layer `layer`'s [Hkv, K, D] at positions start..<start+T.
    func store(layer: Int, keys k: Tensor, values v: Tensor, at start: Int) {
        let rows = k.rowCount, d = keys[layer].shape[2], hkv = keys[layer].shape[0]
        precondition(start + rows <= capacity, "kv cache: positions \(start)..<\(start + rows) exceed \(capacity)")
        let cachedKeys = keys[layer].pointer, cachedValues = values[layer].pointer
        for t in 0..<rows {
            for g in 0..<hkv {
                let target = (g * capacity + start + t) * d, source = (t * hkv + g) * d
                (cachedKeys + target).update(from: k.pointer + source, count: d)
                (cachedValues + target).update(from: v.pointer + source, count: d)
            }
        }
    }

    /// The activations and scratch of a block of `rows` new tokens.
    func layerBuffers(rows: Int) -> (LayerActivations, LayerScratch) {
        (buffers.inferenceActivations(rows: rows), LayerScratch(scores: buffers["scores"], matmul: matmulScratch))
    }
}
