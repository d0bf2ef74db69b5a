import Compression
import Kernels
import Testing

@Suite struct InputStatisticsTests {
    /// Σ x_j² and XᵀX over all rows, naively in Double.
    static func naive(_ batches: [Tensor], inputs: Int) -> (sums: [Double], gram: [Double]) {
        var sums = [Double](repeating: 0, count: inputs), gram = [Double](repeating: 0, count: inputs * inputs)
        for batch in batches {
            for row in 0..<batch.rowCount {
                let x = (0..<inputs).map { Double(batch.pointer[row * inputs + $0]) }
                for i in 0..<inputs {
                    sums[i] += x[i] * x[i]
                    for j in 0..<inputs { gram[i * inputs + j] += x[i] * x[j] }
                }
            }
        }
        return (sums, gram)
    }

    @Test(arguments: InputStatistics.HessianPrecision.allCases)
    func streamedBatchesGiveTheSumsOfSquaresAndTheHessianOfAllRows(precision: InputStatistics.HessianPrecision) throws {
        let inputs = 37
        var random = RandomGenerator(seed: 5)
        let batches = [Tensor(zeros: [11, inputs]), Tensor(zeros: [2, 3, inputs]), Tensor(zeros: [1, inputs])]
        for batch in batches { random.fillNormal(batch, mean: 0.3, standardDeviation: 2) }
        var statistics = try InputStatistics(inputs: inputs, hessian: precision)
        for batch in batches { try statistics.accumulate(batch) }
        try statistics.accumulate(Tensor(zeros: [0, inputs]))  // an empty batch changes nothing
        let (sums, gram) = Self.naive(batches, inputs: inputs)
        #expect(statistics.rowCount == 18)
        for j in 0..<inputs {
            #expect(abs(statistics.columnSumOfSquares[j] - sums[j]) <= 1e-12 * sums[j])
            #expect(abs(statistics.columnNorms[j] - sums[j].squareRoot()) <= 1e-12 * sums[j].squareRoot())
        }
        let h = try #require(statistics.hessian())
        let tolerance = precision == .float64 ? 1e-12 : 1e-5
        var worst = 0.0
        for i in 0..<(inputs * inputs) {
            worst = max(worst, abs(h[i] - 2 * gram[i] / 18) / (2 * gram.map(abs).max()! / 18))
        }
        #expect(worst < tolerance, "relative error \(worst)")
    }

    @Test func withoutAHessianOnlySumsOfSquaresAreKept() throws {
        var statistics = try InputStatistics(inputs: 4)
        #expect(!statistics.hasHessian && statistics.hessian() == nil)
        try statistics.accumulate(Tensor(shape: [2, 4], values: [1, 2, 3, 4, -1, 0, 1, 2]))
        #expect(statistics.columnSumOfSquares == [2, 4, 10, 20])
        #expect(statistics.hessian() == nil)
        #expect(try InputStatistics(inputs: 4, hessian: .float32).hessian() == nil, "no rows yet")
    }

    @Test func aBatchWithANaNIsRefusedWholeAndNamesTheEntry() throws {
        var statistics = try InputStatistics(inputs: 3, hessian: .float32)
        try statistics.accumulate(Tensor(shape: [1, 3], values: [1, 1, 1]))
        #expect(throws: PruningError.nonFinite(what: "calibration batch", row: 1, column: 2)) {
            try statistics.accumulate(Tensor(shape: [2, 3], values: [5, 5, 5, 5, 5, .nan]))
        }
        #expect(statistics.rowCount == 1 && statistics.columnSumOfSquares == [1, 1, 1])
        #expect(try #require(statistics.hessian()) == [Double](repeating: 2, count: 9))
    }

    @Test func wrongWidthsAndSizesAreRefused() throws {
        var statistics = try InputStatistics(inputs: 3)
        #expect(throws: PruningError.batchMismatch(shape: [2, 4], expected: 3)) {
            try statistics.accumulate(Tensor(zeros: [2, 4]))
        }
        #expect(throws: PruningError.invalidInputs(0, limit: InputStatistics.maximumInputs)) {
            try InputStatistics(inputs: 0)
        }
        #expect(throws: PruningError.invalidInputs(40_000, limit: InputStatistics.maximumHessianInputs)) {
            try InputStatistics(inputs: 40_000, hessian: .float32)
        }
    }
}
