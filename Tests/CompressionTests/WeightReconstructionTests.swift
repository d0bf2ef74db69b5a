import Compression
import Foundation
import Kernels
import Testing

/// The least-squares refit of the weights a mask keeps (`reconstructPrunedWeight`), against LAPACK's solution
/// of each row's normal equations.
@Suite struct WeightReconstructionTests {
    /// Row by row, w_S = (H_SS + λI)⁻¹ (H + λI)_S· w_dense on the kept columns S, in Double through LAPACK.
    static func leastSquares(dense: Tensor, mask: Tensor, hessian: [Double], dampening: Double) throws -> Tensor {
        let n = dense.rowLength
        var h = hessian
        let ridge = dampening * (0..<n).reduce(0.0) { $0 + hessian[$1 * n + $1] } / Double(n)
        for j in 0..<n { h[j * n + j] += ridge }
        var out = [Float](repeating: 0, count: dense.count)
        for row in 0..<dense.rowCount {
            let kept = (0..<n).filter { mask.pointer[row * n + $0] != 0 }
            let k = kept.count
            guard k > 0 else { continue }
            var inverse = [Double](repeating: 0, count: k * k)
            for (a, i) in kept.enumerated() { for (b, j) in kept.enumerated() { inverse[a * k + b] = h[i * n + j] } }
            try inverse.withUnsafeMutableBufferPointer { try LAPACK.invertPositiveDefinite($0.baseAddress!, order: k) }
            let rhs = kept.map { i in (0..<n).reduce(0.0) { $0 + h[i * n + $1] * Double(dense.pointer[row * n + $1]) } }
            for a in 0..<k { out[row * n + kept[a]] = Float((0..<k).reduce(0.0) { $0 + inverse[a * k + $1] * rhs[$1] }) }
        }
        return Tensor(shape: dense.shape, values: out)
    }

    static func largestDifference(_ a: Tensor, _ b: Tensor) -> (difference: Float, scale: Float) {
        ((0..<a.count).map { abs(a.pointer[$0] - b.pointer[$0]) }.max()!, b.scalars.map(abs).max()!)
    }

    @Test(arguments: [(SparsityPattern.unstructured, 0.5), (.unstructured, 0.7), (.nOfM(keep: 2, groupSize: 4), 0)])
    func itIsTheLeastSquaresSolutionOnTheMask(pattern: SparsityPattern, sparsity: Double) throws {
        let rows = 6, columns = 48
        let x = PruningTestData.correlatedInputs(rows: 400, columns: columns, rank: 12, seed: 71)
        let statistics = try PruningTestData.statistics(x)
        let hessian = try #require(statistics.hessian())
        let dense = PruningTestData.weight(rows: rows, columns: columns, seed: 72)
        for dampening in [0, 0.01] {
            let pruned = dense.copy()
            try pruneWanda(pruned, statistics: statistics, sparsity: sparsity, pattern: pattern)
            let mask = pruned.copy()
            let summary = try reconstructPrunedWeight(pruned, dense: dense, statistics: statistics,
                                                      options: .init(dampening: dampening, maximumIterations: 300, tolerance: 1e-6))
            for i in 0..<pruned.count { #expect((pruned.pointer[i] == 0) == (mask.pointer[i] == 0), "entry \(i): the mask moved") }
            let expected = try Self.leastSquares(dense: dense, mask: mask, hessian: hessian, dampening: dampening)
            let (worst, scale) = Self.largestDifference(pruned, expected)
            // Conjugate gradients in Float against LAPACK in Double.
            #expect(worst <= 1e-3 * scale, "\(pattern) \(sparsity) λ \(dampening): largest difference \(worst) of \(scale)")
            let none = PruningTestData.reconstructionError(x, dense: dense, pruned: mask)
            let refit = PruningTestData.reconstructionError(x, dense: dense, pruned: pruned)
            #expect(refit < none)
            print("refit \(pattern) s=\(sparsity) λ=\(dampening): \(summary.iterations) iterations, largest difference from LAPACK \(worst / scale); layer error \(none) → \(refit)")
        }
    }

    @Test func theToleranceGetsCloseAndTheDefaultCapKeepsMostOfTheGainForWandaAndMagnitude() throws {
        let rows = 32, columns = 160
        let x = PruningTestData.correlatedInputs(rows: 512, columns: columns, rank: 16, seed: 73)
        let statistics = try PruningTestData.statistics(x, batch: 128)
        let dense = PruningTestData.weight(rows: rows, columns: columns, seed: 74)
        for method in [PruningMethod.wanda, .magnitude] {
            let mask = dense.copy()
            try method.prune(mask, statistics: statistics, sparsity: 0.5, pattern: .unstructured)
            #expect(PruningTestData.zerosPerRow(mask) == [Int](repeating: 80, count: rows))
            let expected = try Self.leastSquares(dense: dense, mask: mask, hessian: try #require(statistics.hessian()), dampening: 0.01)
            let none = PruningTestData.reconstructionError(x, dense: dense, pruned: mask)
            let best = PruningTestData.reconstructionError(x, dense: dense, pruned: expected)

            // Run to the tolerance: stopped at a residual of 1e-3 of the first, within a percent of the exact fit's error.
            let converged = mask.copy()
            let summary = try reconstructPrunedWeight(converged, dense: dense, statistics: statistics, options: .init(maximumIterations: 40))
            let refit = PruningTestData.reconstructionError(x, dense: dense, pruned: converged)
            #expect(summary.unconvergedRows == 0 && summary.iterations < 40, "\(summary)")
            #expect(refit <= 1.01 * best && refit < 0.5 * none, "\(method): none \(none), refit \(refit), exact \(best)")

            // The default cap (10 iterations) stops earlier, with most of the drop from `none` to the exact fit made.
            let capped = mask.copy()
            let cappedSummary = try reconstructPrunedWeight(capped, dense: dense, statistics: statistics)
            let early = PruningTestData.reconstructionError(x, dense: dense, pruned: capped)
            #expect(cappedSummary.iterations <= 10)
            #expect(early - best <= 0.01 * (none - best), "\(method): none \(none), 10 iterations \(early), exact \(best)")
            print("refit after \(method): \(summary.iterations) iterations to converge; layer error \(none) → \(early) after 10, "
                  + "\(refit) converged (exact \(best))")
        }
    }

    @Test func zerosBeforePruningStayAndBadInputsAreRefused() throws {
        let x = PruningTestData.correlatedInputs(rows: 64, columns: 24, rank: 6, seed: 75)
        let statistics = try PruningTestData.statistics(x)
        let dense = PruningTestData.weight(rows: 3, columns: 24, seed: 76)
        for j in 0..<6 { dense.pointer[j * 4] = 0 }  // pruned by an earlier iteration
        let pruned = dense.copy()
        try pruneWanda(pruned, statistics: statistics, sparsity: 0.5, pattern: .unstructured)
        try reconstructPrunedWeight(pruned, dense: dense, statistics: statistics)
        for j in 0..<6 { #expect(pruned.pointer[j * 4] == 0) }
        #expect(PruningTestData.zerosPerRow(pruned) == [12, 12, 12])
        #expect(throws: PruningError.invalidOptions("the dense weight [3, 23] and the pruned one [3, 24] differ in shape")) {
            try reconstructPrunedWeight(pruned, dense: Tensor(zeros: [3, 23]), statistics: statistics)
        }
        #expect(throws: PruningError.hessianNotCollected) {
            try reconstructPrunedWeight(pruned, dense: dense, statistics: try PruningTestData.statistics(x, hessian: nil))
        }
        #expect(throws: PruningError.noCalibrationRows) {
            try reconstructPrunedWeight(pruned, dense: dense, statistics: try InputStatistics(inputs: 24, hessian: .float64))
        }
        for options in [WeightReconstructionOptions(dampening: -1), .init(dampening: .nan), .init(maximumIterations: -1)] {
            #expect(throws: PruningError.self) { try reconstructPrunedWeight(pruned, dense: dense, statistics: statistics, options: options) }
        }
        let bad = dense.copy()
        bad.pointer[5] = .nan
        #expect(throws: PruningError.nonFinite(what: "weight", row: 0, column: 5)) {
            try reconstructPrunedWeight(pruned, dense: bad, statistics: statistics)
        }
    }
}
