import Compression
import Kernels
import Testing

/// Magnitude and Wanda pruning: exact counts, and Wanda against a naive reference.
@Suite struct ScorePruningTests {
    /// Wanda by the book, in Double: per row, sort (|W_ij|·‖X_j‖₂, j) ascending and zero the first k
    /// (or, for N:M, the first M − N of each group).
    static func naiveWanda(_ w: Tensor, norms: [Double], zeros k: Int, groupSize: Int?) -> Tensor {
        let result = w.copy(), columns = w.rowLength
        for row in 0..<w.rowCount {
            let line = result.pointer + row * columns
            let groups: [Range<Int>] = groupSize.map { size in
                stride(from: 0, to: columns, by: size).map { $0..<($0 + size) }
            } ?? [0..<columns]
            for group in groups {
                let order = group.sorted { a, b in
                    let sa = Double(abs(line[a])) * norms[a], sb = Double(abs(line[b])) * norms[b]
                    return sa != sb ? sa < sb : a < b
                }
                for j in order.prefix(k) { line[j] = 0 }
            }
        }
        return result
    }

    @Test(arguments: [(7, 13), (3, 130), (1, 1)])
    func unstructuredPruningZerosExactlyRoundSTimesInPerRow(rows: Int, columns: Int) throws {
        for sparsity in [0, 0.3, 0.5, 0.999, 1] {
            let k = Int((sparsity * Double(columns)).rounded())
            let x = PruningTestData.correlatedInputs(rows: 40, columns: columns, rank: 4, seed: 8)
            let statistics = try PruningTestData.statistics(x, hessian: nil)
            for method in [PruningMethod.magnitude, .wanda] {
                let w = PruningTestData.weight(rows: rows, columns: columns, seed: 1)
                let summary = try method.prune(w, statistics: statistics, sparsity: sparsity, pattern: .unstructured)
                #expect(PruningTestData.zerosPerRow(w) == [Int](repeating: k, count: rows), "\(method) at \(sparsity)")
                #expect(summary.zerosPerRow == PruningTestData.zerosPerRow(w))
                #expect(summary.targetZerosPerRow == k && summary.rowsAboveTarget == 0)
                #expect(summary.method == method && summary.estimatedError == nil)
            }
        }
    }

    @Test(arguments: ["2:4", "4:8", "1:4", "3:8"])
    func nOfMPruningZerosExactlyMMinusNInEveryGroup(pattern text: String) throws {
        let pattern = try SparsityPattern(parsing: text)
        guard case .nOfM(let keep, let size) = pattern else { return }
        let x = PruningTestData.correlatedInputs(rows: 30, columns: 24, rank: 4, seed: 9)
        let statistics = try PruningTestData.statistics(x, hessian: nil)
        for method in [PruningMethod.magnitude, .wanda] {
            let w = PruningTestData.weight(rows: 5, columns: 24, seed: 2)
            // N:M ignores the requested sparsity.
            let summary = try method.prune(w, statistics: statistics, sparsity: 0.9, pattern: pattern)
            #expect(PruningTestData.zerosPerGroup(w, size: size) == [Int](repeating: size - keep, count: 5 * 24 / size))
            #expect(summary.targetZerosPerRow == 24 / size * (size - keep))
            #expect(abs(summary.sparsity - Double(size - keep) / Double(size)) < 1e-12)
        }
        #expect(throws: PruningError.rowNotDivisible(inputs: 26, groupSize: size)) {
            try pruneMagnitude(Tensor(zeros: [2, 26]), sparsity: 0.5, pattern: pattern)
        }
    }

    @Test func wandaEqualsTheNaiveReferenceAndKeepsTheOtherWeights() throws {
        let rows = 12, columns = 96
        let x = PruningTestData.correlatedInputs(rows: 200, columns: columns, seed: 4)
        let statistics = try PruningTestData.statistics(x, hessian: nil, batch: 64)
        let norms = statistics.columnNorms
        for (pattern, zeros, group) in [(SparsityPattern.unstructured, 58, nil), (.nOfM(keep: 2, groupSize: 4), 2, 4)] {
            let w = PruningTestData.weight(rows: rows, columns: columns, seed: 6)
            let expected = Self.naiveWanda(w, norms: norms, zeros: zeros, groupSize: group)
            try pruneWanda(w, statistics: statistics, sparsity: 0.6, pattern: pattern)  // round(0.6 · 96) = 58
            #expect(w.scalars == expected.scalars, "\(pattern)")
        }
        // The scaling matters: magnitude alone chooses differently on these inputs.
        let w = PruningTestData.weight(rows: rows, columns: columns, seed: 6)
        try pruneMagnitude(w, sparsity: 0.6, pattern: .unstructured)
        let byMagnitude = Self.naiveWanda(PruningTestData.weight(rows: rows, columns: columns, seed: 6),
                                          norms: [Double](repeating: 1, count: columns), zeros: 58, groupSize: nil)
        #expect(w.scalars == byMagnitude.scalars)
        let byWanda = Self.naiveWanda(PruningTestData.weight(rows: rows, columns: columns, seed: 6),
                                      norms: norms, zeros: 58, groupSize: nil)
        #expect(w.scalars != byWanda.scalars)
    }

    @Test func tiesArePrunedLowerColumnFirst() throws {
        let w = Tensor(shape: [2, 6], values: [1, -1, 1, 2, -1, 1,
                                               3, 3, 3, 3, 3, 3])
        try pruneMagnitude(w, sparsity: 0.5, pattern: .unstructured)
        #expect(w.scalars == [0, 0, 0, 2, -1, 1,
                              0, 0, 0, 3, 3, 3])
    }

    @Test func weightsAlreadyZeroArePrunedFirstAndRowsWithMoreZerosKeepThem() throws {
        let columns = 20
        let w = PruningTestData.weight(rows: 3, columns: columns, seed: 12)
        // Row 0: 4 zeros (below the target of 10); row 1: 13 zeros (above); row 2: none.
        for j in [1, 7, 8, 19] { w.pointer[j] = 0 }
        for j in 0..<13 { w.pointer[columns + j] = 0 }
        let before = w.copy()
        let x = PruningTestData.correlatedInputs(rows: 30, columns: columns, rank: 4, seed: 10)
        let summary = try pruneWanda(w, statistics: try PruningTestData.statistics(x, hessian: nil),
                                     sparsity: 0.5, pattern: .unstructured)
        #expect(summary.zerosPerRow == [10, 13, 10])
        #expect(summary.rowsAboveTarget == 1)
        for j in [1, 7, 8, 19] { #expect(w.pointer[j] == 0) }
        // Nothing that was kept changed.
        for i in 0..<w.count where w.pointer[i] != 0 { #expect(w.pointer[i] == before.pointer[i]) }
    }

    @Test func badInputsAreTypedErrors() throws {
        let statistics = try PruningTestData.statistics(PruningTestData.correlatedInputs(rows: 8, columns: 6, rank: 2, seed: 1),
                                                        hessian: nil)
        #expect(throws: PruningError.statisticsMismatch(weightInputs: 5, statisticsInputs: 6)) {
            try pruneWanda(Tensor(zeros: [2, 5]), statistics: statistics, sparsity: 0.5, pattern: .unstructured)
        }
        #expect(throws: PruningError.noCalibrationRows) {
            try pruneWanda(Tensor(zeros: [2, 6]), statistics: try InputStatistics(inputs: 6), sparsity: 0.5, pattern: .unstructured)
        }
        #expect(throws: PruningError.weightNotMatrix(shape: [2, 3, 6])) {
            try pruneMagnitude(Tensor(zeros: [2, 3, 6]), sparsity: 0.5, pattern: .unstructured)
        }
        let w = Tensor(zeros: [2, 6])
        w.pointer[9] = .infinity
        #expect(throws: PruningError.nonFinite(what: "weight", row: 1, column: 3)) {
            try pruneMagnitude(w, sparsity: 0.5, pattern: .unstructured)
        }
        #expect(throws: PruningError.invalidSparsity(1.5)) {
            try pruneMagnitude(Tensor(zeros: [2, 6]), sparsity: 1.5, pattern: .unstructured)
        }
        #expect(throws: PruningError.missingStatistics(method: "wanda")) {
            try PruningMethod.wanda.prune(Tensor(zeros: [2, 6]), statistics: nil, sparsity: 0.5, pattern: .unstructured)
        }
    }
}
