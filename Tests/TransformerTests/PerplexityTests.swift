import Foundation
import Kernels
import ModelFormats
import Testing
@testable import Transformer

@Suite struct PerplexityTests {
    @Test func perplexityIsTheExponentialOfTheMeanNextTokenNLLOverFullWindows() throws {
        let decoder = try Decoder(checkpoint: Checkpoint.open(try TransformerFixtures.modelPath("tiny-llama")))
        // 3 full windows of 6 and a tail of 4 that is not scored.
        let stream: [Int32] = (0..<22).map { Int32(($0 * 37 + 11) % decoder.config.vocabSize) }
        let window = 6

        // The reference: full logits per window, log-softmax in Double.
        var total = 0.0, count = 0
        for w in 0..<3 {
            let tokens = Array(stream[(w * window)..<((w + 1) * window)])
            let logits = decoder.logits(tokens: [tokens])[0]
            for t in 0..<(window - 1) {
                let row = logits[t].scalars.map(Double.init)
                let maximum = row.max()!
                let logSumExp = maximum + log(row.reduce(0) { $0 + exp($1 - maximum) })
                total += logSumExp - row[Int(tokens[t + 1])]
                count += 1
            }
        }
        let expected = exp(total / Double(count))

        for (batch, chunkRows) in [(1, 256), (2, 5), (3, 1)] {
            let result = try decoder.perplexity(of: stream, windowLength: window, batch: batch, chunkRows: chunkRows)
            #expect(result.windows == 3 && result.predictedTokens == 15)
            #expect(abs(result.perplexity - expected) <= 1e-5 * expected, "batch \(batch), chunks of \(chunkRows)")
        }
    }

    /// With a BOS prefix every window is BOS + T − 1 text tokens and the first text token is predicted
    /// from the BOS alone; through gemma2's capped head the loss is that of the capped logits.
    @Test func aBOSPrefixedWindowScoresEveryTextTokenAndTheCappedLogits() throws {
        let decoder = try Decoder(checkpoint: Checkpoint.open(try TransformerFixtures.modelPath("tiny-gemma2")))
        let bos: Int32 = 2, window = 6
        let stream: [Int32] = (0..<17).map { Int32(($0 * 41 + 5) % decoder.config.vocabSize) }
        let layout = WindowLayout(length: window, prefix: [bos])
        #expect(layout.windowCount(streamLength: stream.count) == 3 && layout.window(1, of: stream) == [bos] + stream[5..<10])

        var total = 0.0, count = 0
        for w in 0..<3 {
            let tokens = [bos] + Array(stream[(w * 5)..<((w + 1) * 5)])
            let logits = decoder.logits(tokens: [tokens])[0]   // capped by the head
            for t in 0..<(window - 1) {
                let row = logits[t].scalars.map(Double.init)
                #expect(row.allSatisfy { abs($0) < 30 }, "gemma2's final cap keeps logits inside ±30")
                let maximum = row.max()!
                total += maximum + log(row.reduce(0) { $0 + exp($1 - maximum) }) - row[Int(tokens[t + 1])]
                count += 1
            }
        }
        let expected = exp(total / Double(count))
        let result = try decoder.perplexity(of: stream, layout: layout, batch: 2, chunkRows: 4)
        #expect(result.windows == 3 && result.predictedTokens == 15)
        #expect(abs(result.perplexity - expected) <= 1e-5 * expected, "\(result.perplexity) vs \(expected)")
    }

    @Test func aStreamShorterThanOneWindowIsRefusedWithItsLength() throws {
        let decoder = try Decoder(checkpoint: Checkpoint.open(try TransformerFixtures.modelPath("tiny-llama")))
        #expect(throws: TransformerError.streamTooShort(tokens: 5, windowLength: 6)) {
            try decoder.perplexity(of: [1, 2, 3, 4, 5], windowLength: 6)
        }
    }
}
