import Foundation
import Kernels
import ModelFormats
import Testing
@testable import Transformer

@Suite struct AttentionTests {
    @Test(arguments: [(1, 4, 4, 8), (5, 6, 2, 4), (17, 9, 3, 8), (33, 4, 1, 16)])
    func groupedQueryAttentionThroughGEMMsEqualsTheNaiveReference(tokens: Int, heads: Int, kvHeads: Int, headDim: Int) {
        var generator = RandomGenerator(seed: UInt64(tokens * 1000 + heads * 10 + kvHeads))
        let query = Tensor(zeros: [tokens, heads, headDim]), key = Tensor(zeros: [tokens, kvHeads, headDim])
        let value = Tensor(zeros: [tokens, kvHeads, headDim])
        for tensor in [query, key, value] { generator.fillUniform(tensor, in: -2, 2) }
        let fast = Tensor(zeros: query.shape), naive = Tensor(zeros: query.shape)
        let scores = Tensor(shape: [heads / kvHeads, tokens, tokens], repeating: .nan)  // stale values must not leak through

        Attention.attend(query: query.pointer, key: key.pointer, value: value.pointer, out: fast.pointer, scores: scores,
                         tokens: tokens, heads: heads, kvHeads: kvHeads, headDimension: headDim)
        Attention.referenceAttend(query: query.pointer, key: key.pointer, value: value.pointer, out: naive.pointer,
                                  tokens: tokens, heads: heads, kvHeads: kvHeads, headDimension: headDim)
        #expect(maximumRelativeError(fast, naive) < 1e-5)
    }

    @Test func ggufRopeFrequencyFactorsDivideTheStandardFrequencies() throws {
        let checkpoint = try Checkpoint.open(try TransformerFixtures.modelPath("tiny-llama"))
        var tensors = try checkpoint.loadWeights()
        let plain = try DecoderWeights(config: checkpoint.config, tensors: tensors)
        tensors[.ropeFrequencies] = Tensor(shape: [4], values: [1, 2, 4, 8])
        let scaled = try DecoderWeights(config: checkpoint.config, tensors: tensors)
        #expect(plain.ropeInverseFrequencies == RotaryTable.standardInverseFrequencies(headDimension: 8, theta: 10_000))
        #expect(scaled.ropeInverseFrequencies == zip(plain.ropeInverseFrequencies, [1.0, 2, 4, 8]).map { $0 / $1 })
    }

    @Test func weightsMissingATensorOrWithAWrongShapeAreRefusedByRole() throws {
        let checkpoint = try Checkpoint.open(try TransformerFixtures.modelPath("tiny-llama"))
        var tensors = try checkpoint.loadWeights()
        tensors[.layer(1, .up)] = Tensor(zeros: [48, 31])
        #expect(throws: TransformerError.wrongShape(role: "\(TensorRole.layer(1, .up))", shape: [48, 31], expected: [48, 32])) {
            try DecoderWeights(config: checkpoint.config, tensors: tensors)
        }
        tensors[.layer(1, .up)] = nil
        #expect(throws: TransformerError.missingTensor(role: "\(TensorRole.layer(1, .up))")) {
            try DecoderWeights(config: checkpoint.config, tensors: tensors)
        }
    }
}
