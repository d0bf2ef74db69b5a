import Kernels

// Magnitude and Wanda pruning: both zero, in each output row, the weights of
// lowest score |W_ij| · c_j, with c_j = 1 (magnitude) or c_j = ‖X_j‖₂, the
// norm of input feature j over the calibration rows (Wanda: Sun et al. 2023,
// "A Simple and Effective Pruning Approach for Large Language Models", with
// its per-output-row comparison group). Neither updates the weights it keeps.
//
// Ties are broken by column (the lower column is pruned first). A weight that
// is already zero scores 0, so earlier pruned weights are chosen first; a row
// that had more zeros than the target keeps them all (nothing is un-pruned).

/// Prunes `weight` [out, in] in place by |W_ij|.
@discardableResult
public func pruneMagnitude(_ weight: Tensor, sparsity: Double,
                           pattern: SparsityPattern) throws(PruningError) -> PruningSummary {
    let (rows, columns) = try checkedWeightShape(weight)
    let zeros = try pattern.zerosPerRow(inputs: columns, sparsity: sparsity)
    pruneByScore(weight.pointer, rows: rows, columns: columns, pattern: pattern,
                 zerosPerRow: zeros, columnScale: nil)
    return PruningSummary(method: .magnitude, pattern: pattern, rows: rows, columns: columns,
                          targetZerosPerRow: zeros,
                          zerosPerRow: zerosPerRow(weight.pointer, rows: rows, columns: columns))
}

/// Prunes `weight` [out, in] in place by Wanda's |W_ij| · ‖X_j‖₂, with ‖X_j‖₂ from `statistics`.
@discardableResult
public func pruneWanda(_ weight: Tensor, statistics: InputStatistics, sparsity: Double,
                       pattern: SparsityPattern) throws(PruningError) -> PruningSummary {
    let (rows, columns) = try checkedWeightShape(weight)
    guard statistics.inputs == columns else {
        throw .statisticsMismatch(weightInputs: columns, statisticsInputs: statistics.inputs)
    }
    guard statistics.rowCount > 0 else { throw .noCalibrationRows }
    let zeros = try pattern.zerosPerRow(inputs: columns, sparsity: sparsity)
    // Float like the reference; clamped so that 0 · norm can never be 0 · ∞ = NaN.
    let norms = statistics.columnSumOfSquares.map { Float(min($0.squareRoot(), Double(Float.greatestFiniteMagnitude))) }
    norms.withUnsafeBufferPointer { norms in
        pruneByScore(weight.pointer, rows: rows, columns: columns, pattern: pattern,
                     zerosPerRow: zeros, columnScale: norms.baseAddress!)
    }
    return PruningSummary(method: .wanda, pattern: pattern, rows: rows, columns: columns,
                          targetZerosPerRow: zeros,
                          zerosPerRow: zerosPerRow(weight.pointer, rows: rows, columns: columns))
}

/// Zeros the lowest-scoring weights of each row of `w` [rows, columns]: `zerosPerRow` of them
/// (unstructured) or M − N per group of M (N:M); score |w_j| · columnScale[j] (or |w_j|).
func pruneByScore(_ w: UnsafeMutablePointer<Float>, rows: Int, columns: Int, pattern: SparsityPattern,
                  zerosPerRow: Int, columnScale: UnsafePointer<Float>?) {
    guard rows > 0, columns > 0, zerosPerRow > 0 else { return }
    WorkerPool.shared.parallelFor(rows, minimumChunk: max(1, 16_384 / columns)) { range in
        // One key buffer per chunk: `columns` UInt64, freed when the chunk ends.
        let keys = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: columns)
        defer { keys.deallocate() }
        for row in range {
            let line = w + row * columns
            @inline(__always) func score(_ j: Int) -> Float {
                let magnitude = abs(line[j])
                return columnScale.map { magnitude * $0[j] } ?? magnitude
            }
            switch pattern {
            case .unstructured:
                for j in 0..<columns { keys[j] = ScoreSelection.key(score: score(j), column: j) }
                ScoreSelection.partitionSmallest(keys, count: zerosPerRow)
                for i in 0..<zerosPerRow { line[ScoreSelection.column(of: keys[i])] = 0 }
            case .nOfM(let keep, let size):
                let drop = size - keep
                let group = UnsafeMutableBufferPointer(rebasing: keys[0..<size])
                for start in stride(from: 0, to: columns, by: size) {
                    for i in 0..<size { group[i] = ScoreSelection.key(score: score(start + i), column: start + i) }
                    ScoreSelection.partitionSmallest(group, count: drop)
                    for i in 0..<drop { line[ScoreSelection.column(of: group[i])] = 0 }
                }
            }
        }
    }
}
