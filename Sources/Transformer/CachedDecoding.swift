import Kernels
import ModelFormats

/// Incremental decoding with a key/value cache: the same LLaMA block as
/// `Decoder.forward` (transformers' LlamaModel with `past_key_values`, llama.cpp's
/// KV cache), for a block of T new tokens at positions P..<P+T, P = cache.count:
///
///     q, k, v = projections of rmsNorm(x);  rope(q, k) at positions P..<P+T
///     cache[P..<P+T] = k, v
///     out_h = softmax(q_h · cache_kᵀ / √D, query i sees keys 0...P+i) · cache_v
///
/// Shapes: tokens [T]; x [T, C]; q [T, H, D]; k, v [T, Hkv, D]; cache [Hkv, K, D];
/// scores [H/Hkv, T, P+T] per kv head; logits [T, V].
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
        let c = config.hiddenSize, v = config.vocabSize
        let x = cache.residual.slice(0..<n)
        for (i, token) in tokens.enumerated() {
            precondition(token >= 0 && Int(token) < v, "decode: token \(token) is outside the vocabulary of \(v)")
            weights.tokenEmbedding.copyRow(Int(token), into: x.pointer + i * c)
        }
        let positions = (start..<(start + n)).map { Int32($0) }
        for (index, layer) in weights.layers.enumerated() {
            cachedLayerForward(layer, index: index, residual: x, positions: positions, cache: cache)
        }
        rmsNorm(x, weight: weights.outputNorm, epsilon: Float(config.rmsNormEpsilon), into: x)
        cache.advance(by: n)
        return x
    }

    /// One pre-norm block over the new rows `x` [T, C], updated in place; stores the block's k, v in layer `index`'s cache.
    private func cachedLayerForward(_ layer: LayerWeights, index: Int, residual x: Tensor, positions: [Int32],
                                    cache: KVCache) {
        let n = x.rowCount, start = cache.count, keys = start + n
        let h = config.headCount, hkv = config.kvHeadCount, d = config.headDim, group = h / hkv
        let epsilon = Float(config.rmsNormEpsilon)
        let normed = cache.normed.slice(0..<n)
        let query = cache.query.slice(0..<n), key = cache.key.slice(0..<n), value = cache.value.slice(0..<n)
        let attention = cache.attention.slice(0..<n)

        rmsNorm(x, weight: layer.attentionNorm, epsilon: epsilon, into: normed)
        let scratch = cache.matmulScratch
        Attention.project(normed, layer.query, bias: layer.queryBias, into: query, scratch: scratch)
        Attention.project(normed, layer.key, bias: layer.keyBias, into: key, scratch: scratch)
        Attention.project(normed, layer.value, bias: layer.valueBias, into: value, scratch: scratch)
        positions.withUnsafeBufferPointer { positions in
            rotaryEmbeddingForward(query.pointer, tokens: n, heads: h, headDimension: d,
                                   positions: positions.baseAddress!, table: cache.rotary, layout: weights.rotaryLayout)
            rotaryEmbeddingForward(key.pointer, tokens: n, heads: hkv, headDimension: d,
                                   positions: positions.baseAddress!, table: cache.rotary, layout: weights.rotaryLayout)
        }
        // [T, Hkv, D] rows → the cache's [Hkv, K, D] at positions start..<start+T.
        let cachedKeys = cache.keys[index].pointer, cachedValues = cache.values[index].pointer
        for t in 0..<n {
            for g in 0..<hkv {
                let target = (g * cache.capacity + start + t) * d, source = (t * hkv + g) * d
                (cachedKeys + target).update(from: key.pointer + source, count: d)
                (cachedValues + target).update(from: value.pointer + source, count: d)
            }
        }
        let scale = 1 / Float(d).squareRoot(), scores = cache.scores.pointer
        for g in 0..<hkv {
            // scores_h = q_h · k_gᵀ / √D over every cached key, for the group's H/Hkv heads.
            batchedSgemm(transposeA: false, transposeB: true, m: n, n: keys, k: d, alpha: scale,
                         a: query.pointer + g * group * d, lda: h * d, strideA: d,
                         b: cachedKeys + g * cache.capacity * d, ldb: d, strideB: 0,
                         c: scores, ldc: keys, strideC: n * keys, batchCount: group)
            causalSoftmaxForward(scores, y: scores, matrices: group, queries: n, keys: keys, offset: start)
            // out_h = P_h · v_g into the head's D columns of each row.
            batchedSgemm(transposeA: false, transposeB: false, m: n, n: d, k: keys,
                         a: scores, lda: keys, strideA: n * keys,
                         b: cachedValues + g * cache.capacity * d, ldb: d, strideB: 0,
                         c: attention.pointer + g * group * d, ldc: h * d, strideC: d, batchCount: group)
        }
        layer.attentionOutput.apply(attention, into: x, accumulate: true, scratch: scratch)

        rmsNorm(x, weight: layer.ffnNorm, epsilon: epsilon, into: normed)
        FeedForward.forward(layer, input: normed, residual: x, gate: cache.gate.slice(0..<n), up: cache.up.slice(0..<n),
                            scratch: scratch)
    }
}
