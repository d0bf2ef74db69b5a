import Kernels
import ModelFormats

/// The keys and values of every position decoded so far, per layer, plus the
/// activation buffers of one block of new tokens: what incremental decoding
/// (`Decoder.decode(_:cache:)`) needs, sized once when the cache is made.
///
/// Keys are stored after rotary embedding, so a cached position is never rotated again.
///
/// Shapes (K = capacity, N = blockCapacity): keys, values [L][Hkv, K, D];
/// residual, normed [N, C]; query, attention [N, H·D]; key, value [N, Hkv·D];
/// scores [H/Hkv, N, K]; gate, up [N, F]; the rotary table covers positions 0..<K.
public final class KVCache {
    /// Positions the cache holds at most (K).
    public let capacity: Int
    /// Tokens one forward step processes at most (N); longer blocks are split.
    public let blockCapacity: Int
    /// Positions decoded so far; the next token goes to this position.
    public private(set) var count = 0
    let keys: [Tensor]
    let values: [Tensor]
    let residual: Tensor
    let normed: Tensor
    let query: Tensor
    let key: Tensor
    let value: Tensor
    let attention: Tensor
    let scores: Tensor
    let gate: Tensor
    let up: Tensor
    let rotary: RotaryTable
    /// Activation and panel scratch of the compressed-weight products.
    let matmulScratch = CompressedMatmulScratch()
    /// Floats held by all the buffers together.
    public let floatCount: Int

    /// A cache for `capacity` positions of a decoder with `weights`, decoding up to `blockCapacity` tokens per step.
    public init(weights: DecoderWeights, capacity: Int, blockCapacity: Int = 64) {
        precondition(capacity > 0 && blockCapacity > 0, "kv cache: \(capacity) positions, blocks of \(blockCapacity)")
        let c = weights.config, l = c.layerCount, n = min(blockCapacity, capacity)
        let kv = [c.kvHeadCount, capacity, c.headDim]
        let shapes: [[Int]] = Array(repeating: kv, count: 2 * l) + [
            [n, c.hiddenSize], [n, c.hiddenSize],
            [n, c.headCount * c.headDim], [n, c.kvHeadCount * c.headDim], [n, c.kvHeadCount * c.headDim],
            [n, c.headCount * c.headDim], [c.headCount / c.kvHeadCount, n, capacity],
            [n, c.ffnSize], [n, c.ffnSize],
        ]
        // One allocation; each view starts on a 64-byte boundary.
        let offsets = shapes.reduce(into: [0]) { offsets, shape in
            offsets.append(offsets.last! + (shape.reduce(1, *) + 15) / 16 * 16)
        }
        let storage = TensorStorage(count: offsets.last!)
        let views = zip(shapes, offsets).map { Tensor(shape: $0, storage: storage, offset: $1) }
        keys = Array(views[0..<l])
        values = Array(views[l..<(2 * l)])
        (residual, normed, query, key, value, attention, scores, gate, up) =
            (views[2 * l], views[2 * l + 1], views[2 * l + 2], views[2 * l + 3], views[2 * l + 4],
             views[2 * l + 5], views[2 * l + 6], views[2 * l + 7], views[2 * l + 8])
        self.capacity = capacity
        self.blockCapacity = n
        floatCount = offsets.last!
        rotary = RotaryTable(inverseFrequencies: weights.ropeInverseFrequencies, positionCount: capacity)
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
}
