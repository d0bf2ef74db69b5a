import Foundation
import Kernels

/// Prefill and decode speed of a decoder, measured as llama.cpp's `llama-bench` does (pp P: one
/// prompt of P tokens into an empty cache; tg N: N tokens generated one at a time from an empty
/// cache), so the two are comparable: random token ids, the median of `repetitions` timed runs
/// after one untimed warm-up.
public struct DecodeBenchmarkResult: Sendable, Codable, Equatable {
    public var promptTokens: Int
    public var decodeTokens: Int
    public var repetitions: Int
    /// Median seconds of one prefill of `promptTokens`.
    public var prefillSeconds: Double
    /// Median seconds of `decodeTokens` single-token steps.
    public var decodeSeconds: Double
    public var prefillTokensPerSecond: Double { Double(promptTokens) / prefillSeconds }
    public var decodeTokensPerSecond: Double { Double(decodeTokens) / decodeSeconds }
}

extension Decoder {
    /// Bytes of weights one decoded token reads: every projection and the head as stored, one
    /// embedding row, the norms (the memory-bound ceiling of decode is bandwidth ÷ this).
    public var weightBytesPerToken: Int {
        let layers = weights.layers.reduce(0) { total, layer in
            total + [layer.query, layer.key, layer.value, layer.attentionOutput, layer.gate, layer.up, layer.down]
                .reduce(0) { $0 + $1.storedByteCount }
                + (layer.attentionNorm.count + layer.ffnNorm.count) * MemoryLayout<Float>.stride
        }
        let embeddingRow = weights.tokenEmbedding.storedByteCount / max(1, weights.tokenEmbedding.rows)
        return layers + weights.output.storedByteCount + embeddingRow + weights.outputNorm.count * MemoryLayout<Float>.stride
    }

    /// Times `repetitions` prefills of `promptTokens` and decodes of `decodeTokens` (see `DecodeBenchmarkResult`).
    public func benchmark(promptTokens: Int, decodeTokens: Int, repetitions: Int, seed: UInt64 = 1) -> DecodeBenchmarkResult {
        precondition(promptTokens >= 1 && decodeTokens >= 1 && repetitions >= 1,
                     "benchmark: pp \(promptTokens), tg \(decodeTokens), \(repetitions) repetitions")
        var generator = SplitMix64(state: seed)
        let prompt = (0..<promptTokens).map { _ in Int32(truncatingIfNeeded: generator.next() % UInt64(config.vocabSize)) }
        let steps = (0..<decodeTokens).map { _ in Int32(truncatingIfNeeded: generator.next() % UInt64(config.vocabSize)) }
        let prefillCache = makeCache(capacity: promptTokens, blockCapacity: promptTokens)
        let decodeCache = makeCache(capacity: decodeTokens, blockCapacity: 1)
        let logits = Tensor(zeros: [config.vocabSize])

        func seconds(_ body: () -> Void) -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        func prefill() -> Double {
            prefillCache.reset()
            return seconds { decodeLast(prompt, cache: prefillCache, into: logits) }
        }
        func decode() -> Double {
            decodeCache.reset()
            return seconds { for token in steps { decodeLast([token], cache: decodeCache, into: logits) } }
        }
        _ = prefill()
        _ = decode()
        let prefillTimes = (0..<repetitions).map { _ in prefill() }.sorted()
        let decodeTimes = (0..<repetitions).map { _ in decode() }.sorted()
        return DecodeBenchmarkResult(promptTokens: promptTokens, decodeTokens: decodeTokens, repetitions: repetitions,
                                     prefillSeconds: prefillTimes[repetitions / 2], decodeSeconds: decodeTimes[repetitions / 2])
    }
}
