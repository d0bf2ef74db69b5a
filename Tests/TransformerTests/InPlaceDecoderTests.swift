import Foundation
import Kernels
import ModelFormats
import Testing
@testable import Transformer

/// A decoder whose matrices are read in place (quantised GGUF blocks multiplied by the C kernels)
/// computes what the Float32 decoder of the same file computes.
@Suite struct InPlaceDecoderTests {
    @Test(.enabled(if: TransformerFixtures.demoModelExists, "set LOSAD_DEMO_MODEL or run scripts/fetch-demo-model.sh"))
    func theDemoModelReadInPlaceKeepsItsQ4_1BlocksAndNoFloat32Copy() throws {
        let checkpoint = try Checkpoint.open(TransformerFixtures.demoModelPath)
        let decoder = try Decoder(readingInPlace: checkpoint)
        let layer = decoder.weights.layers[0]
        for weight in [layer.query, layer.key, layer.value, layer.attentionOutput, layer.gate, layer.up, layer.down, decoder.weights.output] {
            guard case .compressed(let matrix as QuantizedMatrix) = weight else {
                Issue.record("a matrix of the demo model was expanded to Float32")
                continue
            }
            #expect(matrix.type == .q4_1 || matrix.type == .q8_0)
        }
        // Q4_1 projections: 20 bytes per 32 weights; the tied Q8_0 head 34 per 32.
        let projectionBytes = decoder.weights.layers.reduce(0) { total, l in
            total + [l.query, l.key, l.value, l.attentionOutput, l.gate, l.up, l.down].reduce(0) { $0 + $1.storedByteCount }
        }
        let projectionWeights = decoder.weights.layers.reduce(0) { total, l in
            total + [l.query, l.key, l.value, l.attentionOutput, l.gate, l.up, l.down].reduce(0) { $0 + $1.rows * $1.cols }
        }
        #expect(projectionBytes * 32 == projectionWeights * 20)
    }

    @Test(.enabled(if: TransformerFixtures.demoModelExists, "set LOSAD_DEMO_MODEL or run scripts/fetch-demo-model.sh"))
    func fullSequenceLogitsInPlaceEqualTheFloat32Decoders() throws {
        // Many tokens take the decoded-panel path: the same dequantised weights through sgemm.
        let checkpoint = try Checkpoint.open(TransformerFixtures.demoModelPath)
        let float = try Decoder(checkpoint: checkpoint)
        let inPlace = try Decoder(readingInPlace: checkpoint)
        let tokens = checkpoint.tokenizer.encode("The quick brown fox jumps over the lazy dog because it wants to see the world.",
                                                 addSpecialTokens: false)
        #expect(tokens.count > compressedMatmulDirectTokenLimit)
        let error = maximumRelativeError(inPlace.logits(tokens: [tokens]), float.logits(tokens: [tokens]))
        print("demo model, in place vs Float32, \(tokens.count) tokens: max relative logits error \(error)")
        #expect(error < 1e-4)
    }

    @Test(.enabled(if: TransformerFixtures.demoModelExists, "set LOSAD_DEMO_MODEL or run scripts/fetch-demo-model.sh"))
    func tokenByTokenDecodingInPlaceTracksTheFloat32Decoder() throws {
        // One token at a time takes the direct kernels, whose activations are quantised to 8 bits
        // (as llama.cpp's are): close to the Float32 logits, and the same choice of next token.
        let checkpoint = try Checkpoint.open(TransformerFixtures.demoModelPath)
        let float = try Decoder(checkpoint: checkpoint)
        let inPlace = try Decoder(readingInPlace: checkpoint)
        let tokens = checkpoint.tokenizer.encode("Water boils at a temperature of one hundred degrees Celsius at sea level.",
                                                 addSpecialTokens: false)
        let reference = float.logits(tokens: [tokens])[0]
        let cache = inPlace.makeCache(capacity: tokens.count, blockCapacity: 1)
        var divergence = 0.0, agreements = 0
        for (i, token) in tokens.enumerated() {
            let a = inPlace.decode([token], cache: cache)[0].scalars.map(Double.init)
            let b = reference[i].scalars.map(Double.init)
            // KL(p_Float32 ‖ p_in-place) of the next-token distributions, in nats.
            let (ma, mb) = (a.max()!, b.max()!)
            let za = a.reduce(0) { $0 + exp($1 - ma) }, zb = b.reduce(0) { $0 + exp($1 - mb) }
            divergence += zip(a, b).reduce(0) { sum, pair in
                let lp = pair.1 - mb - log(zb), lq = pair.0 - ma - log(za)
                return sum + exp(lp) * (lp - lq)
            }
            if a.indices.max(by: { a[$0] < a[$1] }) == b.indices.max(by: { b[$0] < b[$1] }) { agreements += 1 }
        }
        let meanDivergence = divergence / Double(tokens.count)
        print("demo model, token by token in place vs Float32: mean KL \(meanDivergence) nats, top-1 agreement \(agreements)/\(tokens.count)")
        #expect(meanDivergence < 0.01)
        #expect(agreements >= tokens.count - 1)
    }
}
