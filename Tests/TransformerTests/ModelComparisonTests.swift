import Foundation
import Kernels
import ModelFormats
import Testing
@testable import Transformer

@Suite struct ModelComparisonTests {
    static let stream: [Int32] = (0..<26).map { Int32(($0 * 37 + 11) % 288) }

    @Test func aModelComparedWithItselfHasZeroDivergenceAndFullAgreement() throws {
        let decoder = try Decoder(checkpoint: Checkpoint.open(try TransformerFixtures.modelPath("tiny-llama")))
        let result = try decoder.compare(with: decoder, on: Self.stream, windowLength: 8, batch: 2, chunkRows: 5)
        #expect(result.windows == 3 && result.comparedTokens == 21)
        #expect(abs(result.meanKL) < 1e-12 && result.topOneAgreement == 1)
    }

    @Test func thePerturbedCopyDivergesByExactlyTheNaiveDoublePrecisionKL() throws {
        let checkpoint = try Checkpoint.open(try TransformerFixtures.modelPath("tiny-llama"))
        let dense = try Decoder(checkpoint: checkpoint)
        var tensors = try checkpoint.loadWeights()
        // Perturb one MLP projection of the first layer by 30% noise.
        var generator = RandomGenerator(seed: 5)
        let down = try #require(tensors[.layer(0, .down)]).copy()
        for i in 0..<down.count { down.pointer[i] *= 1 + 0.3 * generator.nextNormal() }
        tensors[.layer(0, .down)] = down
        let perturbed = try Decoder(weights: DecoderWeights(config: checkpoint.config, tensors: tensors))

        let window = 8, windows = Self.stream.count / window
        var total = 0.0, agree = 0, count = 0
        for w in 0..<windows {
            let tokens = Array(Self.stream[(w * window)..<((w + 1) * window)])
            let p = dense.logits(tokens: [tokens])[0], q = perturbed.logits(tokens: [tokens])[0]
            for t in 0..<(window - 1) {
                let a = p[t].scalars.map(Double.init), b = q[t].scalars.map(Double.init)
                let lseA = a.max()! + log(a.reduce(0) { $0 + exp($1 - a.max()!) })
                let lseB = b.max()! + log(b.reduce(0) { $0 + exp($1 - b.max()!) })
                total += zip(a, b).reduce(0) { $0 + exp($1.0 - lseA) * (($1.0 - lseA) - ($1.1 - lseB)) }
                agree += a.firstIndex(of: a.max()!) == b.firstIndex(of: b.max()!) ? 1 : 0
                count += 1
            }
        }
        let naiveKL = total / Double(count), naiveAgreement = Double(agree) / Double(count)

        for (batch, chunkRows) in [(1, 256), (2, 3)] {
            let result = try dense.compare(with: perturbed, on: Self.stream, windowLength: window, batch: batch, chunkRows: chunkRows)
            print("tiny-llama vs perturbed: KL \(result.meanKL) (naive \(naiveKL)), agreement \(result.topOneAgreement)")
            #expect(result.meanKL > 1e-3)
            #expect(abs(result.meanKL - naiveKL) <= 1e-5 * naiveKL, "batch \(batch), chunks of \(chunkRows)")
            #expect(result.topOneAgreement == naiveAgreement && result.comparedTokens == count)
        }
    }
}
