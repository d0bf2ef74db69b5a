import Foundation
import Kernels
import ModelFormats
import Testing
@testable import Transformer

/// A teacher whose projections stay in the mapped file (decoded one layer at a time) computes what a teacher
/// with a Float32 copy of them computes.
@Suite struct FrozenLayerExpansionTests {
    @Test(.enabled(if: TransformerFixtures.demoModelExists, "set LOSAD_DEMO_MODEL or run scripts/fetch-demo-model.sh"))
    func aTeacherReadInPlaceMatchesTheFloat32TeacherExactly() throws {
        let checkpoint = try Checkpoint.open(TransformerFixtures.demoModelPath)
        let tensors = try checkpoint.loadWeights()
        let float = try DecoderWeights(config: checkpoint.config, tensors: tensors)
        // Projections as the file stores them (Q4_1 blocks), every other tensor Float32.
        let stored = try checkpoint.inPlaceMatrices().filter {
            if case .layer = $0.key { return true } else { return false }
        }
        #expect(stored.count == checkpoint.config.layerCount * 7)
        let inPlace = try DecoderWeights(config: checkpoint.config, tensors: tensors.filter { stored[$0.key] == nil }, matrices: stored)

        let tokens = checkpoint.tokenizer.encode(
            "Water boils at a temperature of one hundred degrees Celsius at sea level, and freezes at zero degrees.",
            addSpecialTokens: false)
        let windows = [Array(tokens.prefix(16)), Array(tokens.suffix(16))]
        let expected = try DistillationTeacher(weights: float, batch: 2, tokens: 16).forward(windows, stopIf: { false })
        let teacher = DistillationTeacher(weights: inPlace, batch: 2, tokens: 16)
        #expect(teacher.workspace.expansion != nil)
        let found = try teacher.forward(windows, stopIf: { false })
        // Decoding gives the values the Float32 load gives, so the same products run on the same numbers.
        #expect(maximumRelativeError(found.hidden, expected.hidden) == 0)
        for (a, b) in zip(found.blockOutputs, expected.blockOutputs) { #expect(maximumRelativeError(a, b) == 0) }
    }

    @Test func float32WeightsNeedNoExpansion() throws {
        let weights = try DecoderWeights(checkpoint: Checkpoint.open(TransformerFixtures.modelPath("tiny-llama")))
        #expect(FrozenLayerExpansion(weights: weights) == nil)
        #expect(LoRATrainingWorkspace(weights: weights, batch: 1, tokens: 4).expansion == nil)
    }
}
