import Compression
import Foundation
import Kernels
import Testing

/// SparseGPT: exact counts, llm-compressor's results, and a smaller layer error than Wanda's.
@Suite struct SparseGPTTests {
    @Test(arguments: [(9, 300), (4, 128), (3, 1), (5, 257)])
    func unstructuredZerosAreExactlyRoundSTimesInPerRow(rows: Int, columns: Int) throws {
        let x = PruningTestData.correlatedInputs(rows: 64, columns: columns, rank: 8, seed: 21)
        let statistics = try PruningTestData.statistics(x, hessian: .float32)
        for sparsity in [0, 0.3, 0.5, 0.7, 0.999, 1] {
            let k = Int((sparsity * Double(columns)).rounded())
            let w = PruningTestData.weight(rows: rows, columns: columns, seed: 22)
            let summary = try pruneSparseGPT(w, statistics: statistics, sparsity: sparsity, pattern: .unstructured)
            #expect(PruningTestData.zerosPerRow(w) == [Int](repeating: k, count: rows), "sparsity \(sparsity)")
            #expect(summary.zerosPerRow == PruningTestData.zerosPerRow(w) && summary.rowsAboveTarget == 0)
            #expect(summary.deadInputs == 0 && summary.estimatedError != nil)
            if k == 0 {
                #expect(w.scalars == PruningTestData.weight(rows: rows, columns: columns, seed: 22).scalars,
                        "nothing pruned, nothing updated")
            }
        }
    }

    @Test(arguments: ["2:4", "4:8", "1:8"])
    func nOfMZerosAreExactlyMMinusNPerGroup(pattern text: String) throws {
        let pattern = try SparsityPattern(parsing: text)
        guard case .nOfM(let keep, let size) = pattern else { return }
        let columns = 264  // two blocks and a partial third
        let x = PruningTestData.correlatedInputs(rows: 80, columns: columns, rank: 8, seed: 23)
        let w = PruningTestData.weight(rows: 6, columns: columns, seed: 24)
        for blockSize in [128, 20] {  // 20 is rounded down to a multiple of M so groups stay whole
            let pruned = w.copy()
            try pruneSparseGPT(pruned, statistics: try PruningTestData.statistics(x), sparsity: 0,
                               pattern: pattern, options: SparseGPTOptions(blockSize: blockSize))
            #expect(PruningTestData.zerosPerGroup(pruned, size: size)
                    == [Int](repeating: size - keep, count: 6 * columns / size), "block size \(blockSize)")
        }
    }

    @Test func matchesLLMCompressorsSparseGPT() throws {
        let fixture = try SparseGPTFixture.load()
        let statistics = try PruningTestData.statistics(fixture.inputs, batch: 64)
        for entry in fixture.cases {
            let w = fixture.weight.copy()
            let summary = try pruneSparseGPT(w, statistics: statistics, sparsity: entry.sparsity, pattern: entry.pattern)
            #expect(summary.deadInputs == 1)
            let estimated = try #require(summary.estimatedError)
            #expect(abs(estimated - entry.loss) <= 1e-4 * entry.loss, "\(entry.name): error \(estimated), reference \(entry.loss)")
            var maskDifferences = 0, worst: Float = 0
            for i in 0..<w.count {
                if (w.pointer[i] == 0) != (entry.expected.pointer[i] == 0) { maskDifferences += 1 }
                worst = max(worst, abs(w.pointer[i] - entry.expected.pointer[i]))
            }
            let scale = entry.expected.scalars.map(abs).max()!
            #expect(maskDifferences == 0, "\(entry.name): \(maskDifferences) zeros in other places")
            // Float32 against the reference's float64: measured 3e-7 of the largest weight in every case.
            #expect(worst <= 2e-6 * scale, "\(entry.name): largest difference \(worst) of \(scale)")
            for j in 0..<w.rowCount { #expect(w.pointer[j * w.rowLength + fixture.deadColumn] == 0) }
            print("llm-compressor \(entry.name): zeros in other places \(maskDifferences), largest difference \(worst / scale) of the largest weight")
        }
    }

    @Test func reconstructsTheLayerBetterThanWandaAndMagnitude() throws {
        let rows = 48, columns = 160
        let x = PruningTestData.correlatedInputs(rows: 512, columns: columns, rank: 16, seed: 31)
        let statistics = try PruningTestData.statistics(x, batch: 128)
        let dense = PruningTestData.weight(rows: rows, columns: columns, seed: 32)
        for (pattern, sparsity) in [(SparsityPattern.unstructured, 0.5), (.unstructured, 0.7), (.nOfM(keep: 2, groupSize: 4), 0)] {
            var errors: [PruningMethod: Double] = [:]
            for method in PruningMethod.allCases {
                let w = dense.copy()
                try method.prune(w, statistics: statistics, sparsity: sparsity, pattern: pattern)
                errors[method] = PruningTestData.reconstructionError(x, dense: dense, pruned: w)
            }
            let sparseGPT = errors[.sparseGPT]!, wanda = errors[.wanda]!, magnitude = errors[.magnitude]!
            // Measured: SparseGPT's error is a small fraction of Wanda's on inputs this correlated.
            #expect(sparseGPT < 0.5 * wanda, "\(pattern) \(sparsity): SparseGPT \(sparseGPT), Wanda \(wanda)")
            #expect(wanda < magnitude, "\(pattern) \(sparsity): Wanda \(wanda), magnitude \(magnitude)")
            print("reconstruction error \(pattern) s=\(sparsity): sparsegpt \(sparseGPT) wanda \(wanda) magnitude \(magnitude)")
        }
    }

    @Test func weightsAlreadyZeroStayZeroAndRowsStillEndExact() throws {
        let rows = 3, columns = 300  // target round(0.5 · 300) = 150 per row
        let x = PruningTestData.correlatedInputs(rows: 64, columns: columns, rank: 8, seed: 41)
        let w = PruningTestData.weight(rows: rows, columns: columns, seed: 42)
        // Row 0: 100 zeros packed in the first block (whose share is 64); row 1: 200 zeros; row 2: 40 at the end.
        for j in 0..<100 { w.pointer[j] = 0 }
        for j in 0..<200 { w.pointer[columns + (j * 3) % columns + (j * 3) / columns] = 0 }
        for j in 260..<300 { w.pointer[2 * columns + j] = 0 }
        let before = w.copy()
        let summary = try pruneSparseGPT(w, statistics: try PruningTestData.statistics(x), sparsity: 0.5, pattern: .unstructured)
        #expect(summary.zerosPerRow == [150, 200, 150])
        for i in 0..<w.count where before.pointer[i] == 0 { #expect(w.pointer[i] == 0, "entry \(i) revived") }

        // N:M: a group with more zeros than M − N keeps them all; the others get exactly M − N.
        let v = PruningTestData.weight(rows: 1, columns: 16, seed: 43)
        for j in [0, 1, 2] { v.pointer[j] = 0 }
        let small = PruningTestData.correlatedInputs(rows: 32, columns: 16, rank: 4, seed: 44)
        try pruneSparseGPT(v, statistics: try PruningTestData.statistics(small), sparsity: 0, pattern: .nOfM(keep: 2, groupSize: 4))
        #expect(PruningTestData.zerosPerGroup(v, size: 4) == [3, 2, 2, 2])
    }

    @Test func deadInputsAreZeroedAndCounted() throws {
        let x = PruningTestData.correlatedInputs(rows: 40, columns: 24, rank: 4, seed: 51)
        for row in 0..<40 { for j in [3, 17] { x.pointer[row * 24 + j] = 0 } }
        let w = PruningTestData.weight(rows: 4, columns: 24, seed: 52)
        let summary = try pruneSparseGPT(w, statistics: try PruningTestData.statistics(x), sparsity: 0.25, pattern: .unstructured)
        #expect(summary.deadInputs == 2)
        #expect(summary.zerosPerRow == [6, 6, 6, 6])
        for row in 0..<4 { #expect(w.pointer[row * 24 + 3] == 0 && w.pointer[row * 24 + 17] == 0) }
    }

    @Test func badInputsAreTypedErrors() throws {
        let x = PruningTestData.correlatedInputs(rows: 10, columns: 8, rank: 2, seed: 61)
        #expect(throws: PruningError.hessianNotCollected) {
            try pruneSparseGPT(Tensor(zeros: [2, 8]), statistics: try PruningTestData.statistics(x, hessian: nil),
                               sparsity: 0.5, pattern: .unstructured)
        }
        #expect(throws: PruningError.noCalibrationRows) {
            try pruneSparseGPT(Tensor(zeros: [2, 8]), statistics: try InputStatistics(inputs: 8, hessian: .float32),
                               sparsity: 0.5, pattern: .unstructured)
        }
        let statistics = try PruningTestData.statistics(x)
        #expect(throws: PruningError.statisticsMismatch(weightInputs: 9, statisticsInputs: 8)) {
            try pruneSparseGPT(Tensor(zeros: [2, 9]), statistics: statistics, sparsity: 0.5, pattern: .unstructured)
        }
        for options in [SparseGPTOptions(blockSize: 0), SparseGPTOptions(dampening: -1), SparseGPTOptions(dampening: .nan)] {
            #expect(throws: PruningError.self) {
                try pruneSparseGPT(Tensor(zeros: [2, 8]), statistics: statistics, sparsity: 0.5,
                                   pattern: .unstructured, options: options)
            }
        }
        // Two identical inputs [3, 4]ᵀ: H = [[25, 25], [25, 25]] is singular, and without dampening Cholesky fails.
        var collinear = try InputStatistics(inputs: 2, hessian: .float64)
        try collinear.accumulate(Tensor(shape: [2, 2], values: [3, 3, 4, 4]))
        let untouched = Tensor(shape: [1, 2], values: [1, 2])
        #expect(throws: PruningError.numerics(.notPositiveDefinite(routine: "dpotrf", order: 2, leadingMinor: 2))) {
            try pruneSparseGPT(untouched, statistics: collinear, sparsity: 0.5,
                               pattern: .unstructured, options: SparseGPTOptions(dampening: 0))
        }
        #expect(untouched.scalars == [1, 2], "a refused weight is left as it was")
    }

    /// Times SparseGPT on SmolLM2-135M's projection shapes; set LOSAD_PRUNING_TIMING=1 to run it.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["LOSAD_PRUNING_TIMING"] == "1"))
    func timingOnSmolLM2ProjectionShapes() throws {
        for (rows, columns) in [(1536, 576), (576, 1536)] {
            let x = PruningTestData.correlatedInputs(rows: 2048, columns: columns, rank: 64, seed: 71)
            let statistics = try PruningTestData.statistics(x, hessian: .float32, batch: 512)
            let w = PruningTestData.weight(rows: rows, columns: columns, seed: 72)
            let clock = ContinuousClock()
            let elapsed = try clock.measure {
                try pruneSparseGPT(w, statistics: statistics, sparsity: 0.5, pattern: .unstructured)
            }
            let wandaElapsed = try clock.measure {
                try pruneWanda(PruningTestData.weight(rows: rows, columns: columns, seed: 72), statistics: statistics,
                               sparsity: 0.5, pattern: .unstructured)
            }
            let statisticsElapsed = try clock.measure { _ = try PruningTestData.statistics(x, hessian: .float32, batch: 512) }
            print("timing \(rows)×\(columns): SparseGPT \(elapsed), Wanda \(wandaElapsed), statistics of 2048 rows \(statisticsElapsed)")
        }
    }
}
