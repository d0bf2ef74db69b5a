import Kernels

/// The knobs of SparseGPT, defaulted as in the reference implementation.
public struct SparseGPTOptions: Sendable, Equatable {
    /// Columns pruned together before the rest of the row is updated lazily (reference 128).
    /// For N:M it is rounded down to a multiple of M (at least M) so no group straddles two blocks.
    public var blockSize: Int
    /// Added to the Hessian's diagonal, as a fraction of the diagonal's mean (reference 0.01).
    public var dampening: Double

    public init(blockSize: Int = 128, dampening: Double = 0.01) {
        self.blockSize = blockSize
        self.dampening = dampening
    }
}

/// Prunes `weight` [out, in] in place with SparseGPT (Frantar & Alistarh, "SparseGPT: Massive
/// Language Models Can Be Accurately Pruned in One-Shot", ICML 2023, Algorithm 1), updating the
/// weights it keeps to compensate, from the Hessian H = 2XᵀX / n in `statistics`.
///
/// As the reference: inputs never active in calibration (H_jj = 0) get H_jj = 1 and their
/// weights are zeroed; H is dampened by `options.dampening` of its mean diagonal; the rows of
/// the upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU) drive the optimal-brain-surgeon updates;
/// columns go in blocks of `options.blockSize`, the error of a block is applied to the columns
/// after it in one product (lazy batch update); a weight's score is w² / U_jj².
///
/// Where we differ, so that every row gets exactly its share: the reference picks one score
/// threshold across a whole block of all rows; here each row prunes, in the block [a, b), its
/// round(s·b) − round(s·a) lowest scores, so it ends with exactly round(s·in) zeros. N:M masks are
/// chosen, as in the reference, at each group's first column from the updated weights.
/// A weight that was already zero (pruned earlier, or a dead input) is always pruned and chosen
/// before any other; if a block holds more of them than its share, the later blocks' shares shrink
/// so the row still ends at round(s·in) — or, if the row had more zeros than that, with exactly
/// the zeros it had (N:M: a group keeps max(M − N, its zeros) zeros). Ties go to the lower column.
///
/// Rows are independent once H⁻¹ is known, so each block's column sweep runs over rows on the
/// worker pool and the lazy update is one OpenBLAS product. Memory besides the weight: the
/// Hessian in Double and its factor in Float (12·in² bytes), out × blockSize errors, a bit per weight.
/// Every error is raised before the weight is touched, except `.nonFinite("weight")` after the
/// updates diverged (then the weight holds what they left; keep a copy if that matters).
@discardableResult
public func pruneSparseGPT(_ weight: Tensor, statistics: InputStatistics, sparsity: Double,
                           pattern: SparsityPattern,
                           options: SparseGPTOptions = SparseGPTOptions()) throws(PruningError) -> PruningSummary {
    let (rows, columns) = try checkedWeightShape(weight)
    guard statistics.inputs == columns else {
        throw .statisticsMismatch(weightInputs: columns, statisticsInputs: statistics.inputs)
    }
    guard statistics.hasHessian else { throw .hessianNotCollected }
    guard options.blockSize >= 1 else { throw .invalidOptions("block size \(options.blockSize) is below 1") }
    guard options.dampening.isFinite, options.dampening >= 0 else {
        throw .invalidOptions("dampening \(options.dampening) is not a finite fraction ≥ 0")
    }
    let target = try pattern.zerosPerRow(inputs: columns, sparsity: sparsity)
    guard var hessian = statistics.hessian() else { throw .noCalibrationRows }
    let blockSize: Int
    switch pattern {
    case .unstructured: blockSize = min(options.blockSize, columns)
    case .nOfM(_, let size): blockSize = min(max(size, options.blockSize / size * size), columns)
    }
    let w = weight.pointer
    let n = columns

    // MARK: Dead inputs, dampening, and the factor U of H⁻¹.
    let (factor, deadColumns) = try inverseHessianFactor(&hessian, order: n, dampening: options.dampening)
    hessian = []
    // Only now is the weight touched, so a failure above leaves it as it was.
    for j in deadColumns { for row in 0..<rows { w[row * n + j] = 0 } }
    let u = UnsafePointer(factor.baseAddress!)
    defer { factor.deallocate() }

    // MARK: Per-row bookkeeping.
    // Weights that are zero now (pruned earlier, or dead) must end zero: one bit each.
    let wordCount = (rows * n + 63) / 64
    let forced = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: max(wordCount, 1))
    defer { forced.deallocate() }
    forced.initialize(repeating: 0)
    let forcedTotal = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(rows, 1))
    let forcedLeft = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(rows, 1))
    let pruned = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(rows, 1))
    let rowError = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(rows, 1))
    let blockErrors = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(rows * blockSize, 1))
    defer {
        forcedTotal.deallocate()
        forcedLeft.deallocate()
        pruned.deallocate()
        rowError.deallocate()
        blockErrors.deallocate()
    }
    pruned.initialize(repeating: 0)
    rowError.initialize(repeating: 0)
    blockErrors.initialize(repeating: 0)
    for row in 0..<rows {
        var count = 0
        for j in 0..<n where w[row * n + j] == 0 {
            let bit = row * n + j
            forced[bit >> 6] |= 1 << UInt64(bit & 63)
            count += 1
        }
        forcedTotal[row] = count
        forcedLeft[row] = count
    }
    let isForced = { (bit: Int) -> Bool in forced[bit >> 6] & (1 << UInt64(bit & 63)) != 0 }

    // MARK: Blocks of columns.
    var start = 0
    while start < n {
        let end = min(start + blockSize, n)
        let width = end - start
        // Unstructured: zeros each row should have among its first `end` columns.
        let cumulativeZeros = pattern == .unstructured ? SparsityPattern.roundedZeros(sparsity, end) : 0
        let errors = blockErrors.baseAddress!
        WorkerPool.shared.parallelFor(rows, minimumChunk: 4) { range in
            let keys = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: width)
            let mask = UnsafeMutableBufferPointer<Bool>.allocate(capacity: width)
            defer {
                keys.deallocate()
                mask.deallocate()
            }
            for row in range {
                let line = w + row * n + start
                let firstBit = row * n + start
                let rowErrors = errors + row * blockSize
                @inline(__always) func key(_ j: Int) -> UInt64 {
                    if isForced(firstBit + j) { return ScoreSelection.forcedKey(column: j) }
                    let d = u[(start + j) * n + start + j]
                    return ScoreSelection.key(score: line[j] * line[j] / (d * d), column: j)
                }
                mask.update(repeating: false)
                if case .unstructured = pattern {
                    var forcedHere = 0
                    for j in 0..<width where isForced(firstBit + j) { forcedHere += 1 }
                    let forcedAfter = forcedLeft[row] - forcedHere
                    let rowTarget = max(target, forcedTotal[row])
                    // Its share, but never fewer than the forced zeros here, and never so many that
                    // the forced zeros of later blocks would push the row past its target.
                    let count = min(max(cumulativeZeros - pruned[row], forcedHere),
                                    rowTarget - pruned[row] - forcedAfter, width)
                    if count > 0 {
                        for j in 0..<width { keys[j] = key(j) }
                        ScoreSelection.partitionSmallest(keys, count: count)
                        for i in 0..<count { mask[ScoreSelection.column(of: keys[i])] = true }
                    }
                    pruned[row] += count
                    forcedLeft[row] = forcedAfter
                }
                var error = 0.0
                for i in 0..<width {
                    if case .nOfM(let keep, let size) = pattern, i % size == 0 {
                        let group = UnsafeMutableBufferPointer(rebasing: keys[0..<size])
                        var forcedHere = 0
                        for g in 0..<size {
                            group[g] = key(i + g)
                            if isForced(firstBit + i + g) { forcedHere += 1 }
                        }
                        let drop = max(size - keep, forcedHere)
                        ScoreSelection.partitionSmallest(group, count: drop)
                        for g in 0..<drop { mask[ScoreSelection.column(of: group[g])] = true }
                    }
                    let value = line[i]
                    let kept: Float = mask[i] ? 0 : value
                    let d = u[(start + i) * n + start + i]
                    // The OBS step: remove the pruned weight, spread its error over the later columns of the block.
                    let step = (value - kept) / d
                    rowErrors[i] = step
                    if step != 0 {
                        let uRow = u + (start + i) * n + start
                        for j in (i + 1)..<width { line[j] -= step * uRow[j] }
                        error += Double(step) * Double(step)
                    }
                    line[i] = kept
                }
                rowError[row] += error / 2
            }
        }
        // Lazy batch update of everything right of the block: W[:, end:] −= E · U[start:end, end:].
        if end < n {
            sgemm(transposeA: false, transposeB: false, m: rows, n: n - end, k: width,
                  alpha: -1, a: errors, lda: blockSize, b: u + start * n + end, ldb: n,
                  beta: 1, c: w + end, ldc: n)
        }
        start = end
    }

    // Updates by an ill-conditioned factor could overflow; say so rather than return garbage silently.
    _ = try checkedWeightShape(weight)
    return PruningSummary(method: .sparseGPT, pattern: pattern, rows: rows, columns: columns,
                          targetZerosPerRow: target,
                          zerosPerRow: zerosPerRow(weight.pointer, rows: rows, columns: columns),
                          deadInputs: deadColumns.count,
                          estimatedError: rowError.reduce(0, +))
}

/// The upper Cholesky factor U of the dampened H⁻¹ (H⁻¹ = UᵀU), in Float [n, n] row-major (the caller deallocates
/// it), as SparseGPT and GPTQ use it: inputs never active in calibration (H_jj = 0) get H_jj = 1 and are returned as
/// dead; then `dampening` × the mean diagonal is added to the diagonal. `hessian` [n, n] is overwritten.
func inverseHessianFactor(_ hessian: inout [Double], order n: Int,
                          dampening: Double) throws(PruningError) -> (factor: UnsafeMutableBufferPointer<Float>, deadColumns: [Int]) {
    var deadColumns: [Int] = []
    for j in 0..<n where hessian[j * n + j] == 0 {
        hessian[j * n + j] = 1
        deadColumns.append(j)
    }
    var diagonalSum = 0.0
    for j in 0..<n {
        guard hessian[j * n + j].isFinite else { throw .nonFinite(what: "Hessian", row: j, column: j) }
        diagonalSum += hessian[j * n + j]
    }
    let damp = dampening * diagonalSum / Double(n)
    for j in 0..<n { hessian[j * n + j] += damp }
    do {
        try hessian.withUnsafeMutableBufferPointer { h throws(KernelsError) in
            try LAPACK.choleskyFactorize(h.baseAddress!, order: n, triangle: .lower)
            try LAPACK.invertFromCholesky(h.baseAddress!, order: n, triangle: .lower)
            try LAPACK.choleskyFactorize(h.baseAddress!, order: n, triangle: .upper)
        }
    } catch {
        throw .numerics(error)
    }
    let factor = UnsafeMutableBufferPointer<Float>.allocate(capacity: n * n)
    for i in 0..<(n * n) { factor[i] = Float(hessian[i]) }
    return (factor, deadColumns)
}
