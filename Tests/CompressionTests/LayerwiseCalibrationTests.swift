@testable import Compression
import Foundation
import Kernels
import ModelFormats
import Testing
import Transformer

@Suite struct LayerwiseCalibrationTests {
    static func setUp() throws -> (Decoder, [[Int32]]) {
        let decoder = try Decoder(checkpoint: Checkpoint.open(CompressionJobTests.tinyModel))
        let weights = try DecoderWeights(config: decoder.config,
                                         tensors: Checkpoint.open(CompressionJobTests.tinyModel).loadWeights().mapValues { $0.copy() })
        var generator = RandomGenerator(seed: 9)
        let windows = (0..<5).map { _ in (0..<12).map { _ in Int32(generator.next() % UInt64(decoder.config.vocabSize)) } }
        return (Decoder(weights: weights), windows)
    }

    /// Unpruned blocks reproduce the dense features up to their Float16 storage; the Gram matrix of block 0's
    /// input is that of the embeddings.
    @Test func densePassesAgreeWithTheForward() throws {
        let (decoder, windows) = try Self.setUp()
        let calibration = LayerwiseCalibration(decoder: decoder, windows: windows, chunk: 2)
        let dense = try calibration.denseFeatures()
        let results = try calibration.prune(sparsities: [0, 0], method: .wanda, pattern: .unstructured, dense: .stored(dense))
        for r in results { #expect(r.reconstructionError! < 1e-5 && r.sparsity == 0) }

        let grams = try calibration.layerGrams()
        let c = decoder.config.hiddenSize, features = 12 * c
        for i in 0..<windows.count {
            for j in 0..<windows.count {
                var expected = 0.0
                for t in 0..<12 {
                    let a = decoder.weights.tokenEmbedding.tensor.pointer + Int(windows[i][t]) * c
                    let b = decoder.weights.tokenEmbedding.tensor.pointer + Int(windows[j][t]) * c
                    for k in 0..<c { expected += Double(a[k]) * Double(b[k]) }
                }
                #expect(abs(grams[0][i, j] - expected) <= 1e-9 * max(1, abs(expected)), "K[\(i),\(j)] of \(features) features")
            }
        }
    }

    /// Sequential pruning zeroes exactly round(x_l·in) weights in every row of every projection and reports errors
    /// that grow with sparsity.
    @Test(arguments: [PruningMethod.magnitude, .wanda, .sparseGPT])
    func pruningIsExactPerRowAndErrorsGrowWithSparsity(method: PruningMethod) throws {
        let (decoder, windows) = try Self.setUp()
        let calibration = LayerwiseCalibration(decoder: decoder, windows: windows, chunk: 2)
        let dense = try calibration.denseFeatures()
        let mild = try calibration.prune(sparsities: [0.25, 0.25], method: method, pattern: .unstructured, dense: .stored(dense))
        let strong = try calibration.prune(sparsities: [0.6, 0.55], method: method, pattern: .unstructured, dense: .stored(dense))
        for (l, layer) in decoder.weights.layers.enumerated() {
            for p in SparseLoRA.Projection.allCases {
                let w = SparseLoRA.weight(layer, p), (out, input) = SparseLoRA.shape(of: p, config: decoder.config)
                let k = Int(([0.6, 0.55][l] * Double(input)).rounded())
                for row in 0..<out {
                    #expect((0..<input).filter { w.pointer[row * input + $0] == 0 }.count == k, "layer \(l) \(p) row \(row)")
                }
            }
        }
        for l in 0..<2 { #expect(strong[l].reconstructionError! > mild[l].reconstructionError!) }
    }

    /// Least-squares reconstruction after Wanda keeps Wanda's mask exactly and lowers every block's
    /// reconstruction error against the dense features.
    @Test func reconstructionKeepsTheMaskAndLowersEveryBlocksError() throws {
        var masks: [[[Bool]]] = [], errors: [[Double]] = []
        for reconstruction in [nil, WeightReconstructionOptions()] {
            let (decoder, windows) = try Self.setUp()
            let calibration = LayerwiseCalibration(decoder: decoder, windows: windows, chunk: 2)
            let dense = try calibration.denseFeatures()
            let results = try calibration.prune(sparsities: [0.6, 0.5], method: .wanda, pattern: .unstructured, dense: .stored(dense),
                                                reconstruction: reconstruction)
            errors.append(results.map { $0.reconstructionError! })
            masks.append(decoder.weights.layers.map { layer in
                SparseLoRA.Projection.allCases.flatMap { p in
                    let w = SparseLoRA.weight(layer, p)
                    return (0..<w.count).map { w.pointer[$0] == 0 }
                }
            })
        }
        // Block 0's inputs are the same either way, so its mask is too; block 1 is fed the refitted block 0, whose
        // different outputs may move Wanda's choice, so only its zero count is compared.
        #expect(masks[0][0] == masks[1][0])
        #expect(masks[0][1].filter { $0 }.count == masks[1][1].filter { $0 }.count)
        for l in 0..<2 { #expect(errors[1][l] < errors[0][l], "block \(l): \(errors[1][l]) refitted, \(errors[0][l]) not") }
        print("reconstruction errors of the tiny model's blocks: Wanda \(errors[0]), with least squares \(errors[1])")
    }

    /// Dense features far past Float16's range (Gemma's residual stream reaches ~1e5) give finite reconstruction
    /// errors equal to the Double computation: zero for the same output, e for a perturbed one.
    @Test func reconstructionErrorsStayFiniteAndExactPastTheFloat16Range() throws {
        let rows = 40, c = 8
        var generator = RandomGenerator(seed: 21)
        func uniform() -> Float { Float(generator.next() % 2_000_001) / 1_000_000 - 1 }
        // Channel j has magnitudes around 10^(j − 2): from 0.01 to 1e5, and channel 3 is all zero.
        let dense = (0..<(rows * c)).map { i -> Float in i % c == 3 ? 0 : uniform() * Float(pow(10, Double(i % c) - 2)) }
        var features = DenseFeatures(hiddenSize: c)
        features.append(output: Tensor(shape: [rows, c], values: dense))
        #expect(features.reconstructionError(layer: 0, output: Tensor(shape: [rows, c], values: dense)) < 1e-7)

        let pruned = dense.enumerated().map { i, y in y * (1 + 0.05 * uniform()) + (i % c == 3 ? 1 : 0) }
        var norms = [Double](repeating: 0, count: c)
        for (i, y) in dense.enumerated() { norms[i % c] += Double(y) * Double(y) }
        var expected = 0.0
        for (i, (y, p)) in zip(dense, pruned).enumerated() where norms[i % c] > 0 {
            let d = (Double(y) - Double(p)) / norms[i % c].squareRoot()
            expected += d * d
        }
        expected /= Double(c)
        let error = features.reconstructionError(layer: 0, output: Tensor(shape: [rows, c], values: pruned))
        #expect(error.isFinite && abs(error - expected) <= 1e-3 * expected, "e = \(error), Double: \(expected)")
    }
}
