import Compression
import Foundation
import Kernels
import Testing

/// GPTQ-style s4 rounding with the mask fixed (`roundS4WithHessian`): what it leaves is exactly what the sparse
/// encoding stores, the mask does not grow, and the layer's output error on the calibration inputs is smaller than
/// with each value rounded to its nearest level (weighted scales or not).
@Suite struct HessianS4RoundingTests {
    /// A Wanda-pruned weight (half of each row kept by |w| · ‖x_j‖) and the inputs' statistics.
    static func prunedLayer(rows: Int, columns: Int, seed: UInt64) throws -> (w: Tensor, x: Tensor, statistics: InputStatistics) {
        let x = PruningTestData.correlatedInputs(rows: 512, columns: columns, rank: 16, seed: seed)
        let statistics = try PruningTestData.statistics(x)
        let w = PruningTestData.weight(rows: rows, columns: columns, seed: seed + 1)
        _ = try pruneWanda(w, statistics: statistics, sparsity: 0.5, pattern: .unstructured)
        return (w, x, statistics)
    }

    @Test(arguments: [(48, 200), (16, 64), (5, 70)])
    func theRoundedWeightIsExactlyWhatTheEncodingStoresAndNoPrunedWeightComesBack(rows: Int, columns: Int) throws {
        let (w, _, statistics) = try Self.prunedLayer(rows: rows, columns: columns, seed: 31)
        let rounded = w.copy()
        let scales = try roundS4WithHessian(rounded, statistics: statistics)
        let decoded = SparseMatrix.encodeS4(rounded, scales: scales).decode()
        #expect(decoded.scalars == rounded.scalars)
        #expect((0..<w.count).allSatisfy { w.pointer[$0] != 0 || rounded.pointer[$0] == 0 })
        // Most kept weights stay kept (a few may round to the level 0).
        let kept = (0..<w.count).count { w.pointer[$0] != 0 }, stillKept = (0..<w.count).count { rounded.pointer[$0] != 0 }
        #expect(stillKept * 10 >= kept * 9, "\(stillKept) of \(kept) kept weights are nonzero after rounding")
    }

    @Test func theOutputErrorIsBelowNearestLevelRoundingWeightedOrNot() throws {
        let (w, x, statistics) = try Self.prunedLayer(rows: 64, columns: 256, seed: 41)
        let secondMoments = statistics.columnSumOfSquares.map { Float($0 / Double(statistics.rowCount)) }
        let plain = SparseMatrix.encode(w, kind: .s4).decode()
        let weighted = SparseMatrix.encode(w, kind: .s4, importances: secondMoments).decode()
        let rounded = w.copy()
        _ = try roundS4WithHessian(rounded, statistics: statistics)
        let plainError = PruningTestData.reconstructionError(x, dense: w, pruned: plain)
        let weightedError = PruningTestData.reconstructionError(x, dense: w, pruned: weighted)
        let roundedError = PruningTestData.reconstructionError(x, dense: w, pruned: rounded)
        print("layer output error: s4 \(plainError), weighted \(weightedError), GPTQ \(roundedError)")
        #expect(weightedError < plainError, "weighted nearest \(weightedError), unweighted \(plainError)")
        #expect(roundedError < 0.7 * weightedError, "GPTQ \(roundedError), weighted nearest \(weightedError)")
    }

    @Test func statisticsOfAnotherWidthOrWithoutAHessianAreRefused() throws {
        let (w, x, _) = try Self.prunedLayer(rows: 4, columns: 64, seed: 51)
        #expect(throws: PruningError.hessianNotCollected) {
            _ = try roundS4WithHessian(w, statistics: try PruningTestData.statistics(x, hessian: nil))
        }
        let other = try PruningTestData.statistics(PruningTestData.correlatedInputs(rows: 32, columns: 65, seed: 52))
        #expect(throws: PruningError.statisticsMismatch(weightInputs: 64, statisticsInputs: 65)) {
            _ = try roundS4WithHessian(w, statistics: other)
        }
    }
}
