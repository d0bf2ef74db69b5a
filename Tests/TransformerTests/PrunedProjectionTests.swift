import Foundation
import Kernels
import ModelFormats
import Testing
@testable import Transformer

/// `PrunedProjection` against a Float32 copy handled as the Float32 student is: masks, own values, merged adapters.
@Suite struct PrunedProjectionTests {
    /// The gate projection of the tiny LLaMA's shape [48, 32], Q8_0 from random values, its decoding, and adapters
    /// with B ≠ 0 at rank 3 of 4.
    struct Setup {
        let config: ModelConfig
        let source: QuantizedMatrix
        let dense: Tensor
        let adapters: SparseLoRA
        let layer = 1, projection = SparseLoRA.Projection.gate

        init() throws {
            config = try Checkpoint.open(TransformerFixtures.modelPath("tiny-llama")).config
            let (rows, cols) = SparseLoRA.shape(of: .gate, config: config)
            var random = RandomGenerator(seed: 7)
            let values = Tensor(zeros: [rows, cols])
            random.fillNormal(values)
            var bytes = [UInt8](repeating: 0, count: GGMLType.q8_0.byteCount(elements: rows * cols)!)
            try bytes.withUnsafeMutableBytes { try quantize(.q8_0, from: values.pointer, count: rows * cols, into: $0) }
            source = try QuantizedMatrix(type: .q8_0, rows: rows, cols: cols, copying: bytes, name: "gate")
            dense = Tensor(zeros: [rows, cols])
            source.dequantize(rows: 0..<rows, into: dense.pointer, path: .best)
            adapters = SparseLoRA(config: config, settings: .init(maximumRank: 4), seed: 3)
            adapters.ranks = [3, 3]
            random.fillNormal(adapters.b(layer, projection), standardDeviation: 0.1)
        }

        func expanded(_ matrix: PrunedProjection) -> Tensor {
            let out = Tensor(zeros: [matrix.rows, matrix.cols])
            matrix.decodeAll(into: out.pointer)
            return out
        }

        /// W + ΔW at W's nonzeros, as `SparseLoRA.merge` changes a Float32 weight.
        func merged(_ w: Tensor) -> Tensor {
            let delta = Tensor(zeros: w.shape)
            adapters.delta(layer, projection, weight: w, into: delta)
            let out = w.copy()
            for i in 0..<w.count where w.pointer[i] != 0 { out.pointer[i] += delta.pointer[i] }
            return out
        }

        /// Half of the weights zeroed (every other one), as a pruning pass leaves a Float32 copy.
        func pruned(_ w: Tensor) -> Tensor {
            let out = w.copy()
            for i in stride(from: 0, to: out.count, by: 2) { out.pointer[i] = 0 }
            return out
        }
    }

    static func values(_ t: Tensor) -> [Float] { Array(UnsafeBufferPointer(start: t.pointer, count: t.count)) }

    static func largestDifference(_ a: Tensor, _ b: Tensor) -> Float {
        zip(values(a), values(b)).map { abs($0 - $1) }.max() ?? 0
    }

    @Test func withoutAMaskItIsTheSourceAndAPrunedOneKeepsOnlyTheMask() throws {
        let s = try Setup()
        let matrix = PrunedProjection(source: s.source)
        #expect(Self.values(s.expanded(matrix)) == Self.values(s.dense))
        let pruned = s.pruned(s.dense)
        let before = matrix.version
        matrix.store(pruned.pointer, ownValues: false)
        #expect(matrix.version > before && matrix.keptValues == nil && matrix.prunedBits != nil)
        #expect(Self.values(s.expanded(matrix)) == Self.values(pruned))
        // Rows decoded on their own are the same rows.
        let rows = Tensor(zeros: [5, matrix.cols])
        matrix.dequantize(rows: 7..<12, into: rows.pointer, path: .best)
        #expect(Self.values(rows) == Array(Self.values(pruned)[(7 * matrix.cols)..<(12 * matrix.cols)]))
        matrix.reset()
        #expect(Self.values(s.expanded(matrix)) == Self.values(s.dense) && matrix.prunedBits == nil)
    }

    @Test func refittedValuesAreKeptExactly() throws {
        let s = try Setup()
        let matrix = PrunedProjection(source: s.source)
        let refitted = s.pruned(s.dense)
        for i in 0..<refitted.count where refitted.pointer[i] != 0 { refitted.pointer[i] *= 1.25 }
        matrix.store(refitted.pointer, ownValues: true)
        #expect(matrix.keptValues?.count == Self.values(refitted).filter { $0 != 0 }.count)
        #expect(Self.values(s.expanded(matrix)) == Self.values(refitted))
    }

    /// Merging adds the Float32 merge's ΔW; unmerging gives the unmerged matrix back bit for bit (the Float32 copy
    /// only to rounding); pruning while merged keeps the mask, and with the refit the values less ΔW.
    @Test func mergedAdaptersAreAddedAndRemovedExactly() throws {
        let s = try Setup()
        let matrix = PrunedProjection(source: s.source)
        let pruned = s.pruned(s.dense)
        matrix.store(pruned.pointer, ownValues: false)
        s.adapters.ranks = [3, 3]
        matrix.merge(s.adapters, layer: s.layer, projection: s.projection)
        let reference = s.merged(pruned)
        #expect(Self.largestDifference(s.expanded(matrix), reference) <= 1e-6, "merged")
        #expect(Self.largestDifference(s.expanded(matrix), pruned) > 1e-3, "ΔW is not zero")
        matrix.unmerge()
        #expect(Self.values(s.expanded(matrix)) == Self.values(pruned))

        // Pruned further while merged: mask only, then with values (the refit's), ΔW subtracted with the new mask.
        matrix.merge(s.adapters, layer: s.layer, projection: s.projection)
        let further = s.expanded(matrix)
        for i in stride(from: 1, to: further.count, by: 4) { further.pointer[i] = 0 }
        matrix.store(further.pointer, ownValues: false)
        #expect(Self.values(s.expanded(matrix)) == Self.values(further))
        matrix.unmerge()
        let unmergedMask = s.expanded(matrix)
        for i in 0..<further.count { #expect((unmergedMask.pointer[i] == 0) == (further.pointer[i] == 0)) }
        matrix.merge(s.adapters, layer: s.layer, projection: s.projection)
        let refit = s.expanded(matrix)
        for i in 0..<refit.count where refit.pointer[i] != 0 { refit.pointer[i] *= 0.9 }
        matrix.store(refit.pointer, ownValues: true)
        matrix.unmerge()
        let delta = Tensor(zeros: refit.shape)
        s.adapters.delta(s.layer, s.projection, weight: refit, into: delta)
        let expected = refit.copy()
        for i in 0..<refit.count where refit.pointer[i] != 0 { expected.pointer[i] -= delta.pointer[i] }
        #expect(Self.largestDifference(s.expanded(matrix), expected) <= 1e-6)
    }

    /// A checkpoint's weights: the source's values keep no values of their own; changed ones do.
    @Test func restoringDetectsWhetherTheValuesAreTheSources() throws {
        let s = try Setup()
        let matrix = PrunedProjection(source: s.source)
        let pruned = s.pruned(s.dense)
        matrix.restore(pruned.pointer)
        #expect(matrix.keptValues == nil && Self.values(s.expanded(matrix)) == Self.values(pruned))
        pruned.pointer[1] += 0.5
        matrix.restore(pruned.pointer)
        #expect(matrix.keptValues != nil && Self.values(s.expanded(matrix)) == Self.values(pruned))
    }

    /// A few tokens take the direct path (Float32 rows dotted), more the decoded panels: both the expansion's product.
    @Test(arguments: [3, 40])
    func productsEqualTheExpandedMatrixs(tokens: Int) throws {
        let s = try Setup()
        let matrix = PrunedProjection(source: s.source)
        matrix.store(s.pruned(s.dense).pointer, ownValues: false)
        matrix.merge(s.adapters, layer: s.layer, projection: s.projection)
        var random = RandomGenerator(seed: 11)
        let x = Tensor(zeros: [tokens, matrix.cols])
        random.fillNormal(x)
        let y = Tensor(zeros: [tokens, matrix.rows]), reference = Tensor(zeros: [tokens, matrix.rows])
        compressedMatmul(x, matrix, into: y, scratch: CompressedMatmulScratch())
        matmul(x, s.expanded(matrix), transposeB: true, into: reference)
        #expect(Self.largestDifference(y, reference) <= 1e-4)
    }
}
