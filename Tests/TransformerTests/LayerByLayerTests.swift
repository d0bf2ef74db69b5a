import Foundation
import Kernels
import ModelFormats
import Testing
import Transformer

@Suite struct LayerByLayerTests {
    /// Embedding, every block in turn and the final norm give the inference forward's hidden states bit for bit,
    /// and the exposed projection inputs are what the projections consume (checked on q: x·W_qᵀ + b).
    @Test(arguments: ["tiny-llama", "tiny-qwen2"])
    func blocksInTurnReproduceTheForward(model: String) throws {
        let decoder = try Decoder(checkpoint: try Checkpoint.open(try TransformerFixtures.modelPath(model)))
        let c = decoder.config, batch = 2, t = 9
        var generator = RandomGenerator(seed: 5)
        let tokens = (0..<batch).map { _ in (0..<t).map { _ in Int32(generator.next() % UInt64(c.vocabSize)) } }
        let expected = decoder.forward(tokens, workspace: decoder.makeWorkspace(batch: batch, tokens: t)).copy()

        let w = LoRATrainingWorkspace(weights: decoder.weights, batch: batch, tokens: t, policy: .recompute)
        let x = Tensor(zeros: [batch * t, c.hiddenSize])
        decoder.embed(windows: tokens, into: x, workspace: w)
        for l in 0..<c.layerCount {
            let input = x.copy()
            decoder.runLayer(l, residual: x, batch: batch, workspace: w)
            // normed1 = rmsNorm(input): query = normed1·W_qᵀ (+ bias) before rotation is not kept, so check
            // normed1 against the norm directly.
            let normed = Tensor(zeros: input.shape)
            rmsNorm(input, weight: decoder.weights.layers[l].attentionNorm, epsilon: Float(c.rmsNormEpsilon), into: normed)
            let exposed = w.projectionInput(.query, layer: l, rows: batch * t)
            #expect((0..<normed.count).allSatisfy { normed.pointer[$0] == exposed.pointer[$0] })
            #expect(w.projectionInput(.down, layer: l, rows: batch * t).shape == [batch * t, c.ffnSize])
        }
        let hidden = Tensor(zeros: x.shape)
        decoder.finalNorm(x, into: hidden)
        #expect((0..<hidden.count).allSatisfy { hidden.pointer[$0] == expected.pointer[$0] })
    }
}
