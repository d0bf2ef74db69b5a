import Kernels
import ModelFormats

/// Incremental decoding with a key/value cache: the same block as `Decoder.forward` (transformers'
/// model with `past_key_values`, llama.cpp's KV cache), for a block of T new tokens at positions
/// P..<P+T, P = cache.count — `DecoderLayer.forward` with `AttentionKeys.cache`, which appends each
/// layer's k, v to the cache and attends over all cached positions.
///
/// Shapes: tokens [T]; x [T, C]; logits [T, V].
extension Decoder {
    /// A cache for `capacity` positions, decoding up to `blockCapacity` tokens per forward step.
    public func makeCache(capacity: Int, blockCapacity: Int = 64) -> KVCache {
        KVCache(weights: weights, capacity: capacity, blockCapacity: blockCapacity)
    }

    /// The logits [T, V] of `tokens` [T] following the cached positions, in a new tensor; appends them to the cache.
    public func decode(_ tokens: [Int32], cache: KVCache) -> Tensor {
        let logits = Tensor(zeros: [tokens.count, config.vocabSize])
        var start = 0
        while start < tokens.count {
            let end = min(tokens.count, start + cache.blockCapacity)
            let hidden = decodeBlock(tokens[start..<end], cache: cache)
            head(hidden, into: logits.slice(start..<end), scratch: cache.matmulScratch)
            start = end
        }
        return logits
    }

    /// Appends `tokens` [T] to the cache and writes the logits [V] of the last one into `logits`.
    public func decodeLast(_ tokens: [Int32], cache: KVCache, into logits: Tensor) {
        precondition(!tokens.isEmpty && logits.count == config.vocabSize,
                     "decode: \(tokens.count) tokens, logits \(logits.shape) for a vocabulary of \(config.vocabSize)")
        var start = 0
        while start < tokens.count {
            let end = min(tokens.count, start + cache.blockCapacity)
            let hidden = decodeBlock(tokens[start..<end], cache: cache)
            if end == tokens.count { head(hidden.slice((end - start - 1)..<(end - start)), into: logits, scratch: cache.matmulScratch) }
            start = end
        }
    }

    /// Runs one block of at most `cache.blockCapacity` tokens through every layer and the final norm;
    /// returns the normed hidden states [T, C] (a view of the cache's buffers).
    func decodeBlock(_ tokens: ArraySlice<Int32>, cache: KVCache) -> Tensor {
        let n = tokens.count, start = cache.count
        precondition(n >= 1 && n <= cache.blockCapacity, "decode: a block of \(n) tokens for blocks of \(cache.blockCapacity)")
        precondition(start + n <= cache.capacity, "decode: \(start) cached + \(n) new positions exceed the cache's \(cache.capacity)")
        let x = cache.residual.slice(0..<n)
        embed([Array(tokens)], into: x, tokensPerWindow: n)
        let positions = (start..<(start + n)).map { Int32($0) }
        let (activations, scratch) = cache.layerBuffers(rows: n)
        positions.withUnsafeBufferPointer { positions in
            for (l, layer) in weights.layers.enumerated() {
                DecoderLayer.forward(layer, index: l, config: config, layout: weights.rotaryLayout,
                                     rotary: cache.rotary.table(forLayer: l), positions: positions.baseAddress!,
                                     residual: x, keys: .cache(cache, layer: l), activations: activations,
                                     scratch: scratch, adapters: nil)
            }
        }
        finalNorm(x, into: x)
        cache.advance(by: n)
        return x
    }
}
