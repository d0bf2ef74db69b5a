import Kernels

/// The knobs of the least-squares refit of surviving weights (`reconstructPrunedWeight`).
public struct WeightReconstructionOptions: Sendable, Equatable {
    /// Added to the Hessian's diagonal as a fraction of its mean, as SparseGPT dampens (0.01): a ridge that keeps
    /// the refit near the dense weights where the calibration inputs say little.
    public var dampening: Double
    /// Conjugate-gradient iterations at most. 10: on the demo model (quick profile, Wanda 50%, RMI) the pruned-only
    /// model refitted with at most 10, 20 and 40 iterations scored 20.576 / 30.269, 20.543 / 30.378 and 20.565 /
    /// 30.367 (python-docs / perldiag: within 0.4% of each other), while every iteration is one product of the rows
    /// with H (out·in² multiply-adds): the refit's cost is proportional to this cap.
    public var maximumIterations: Int
    /// A row stops once its residual norm is this fraction of its first one.
    public var tolerance: Double

    public init(dampening: Double = 0.01, maximumIterations: Int = 10, tolerance: Double = 1e-3) {
        self.dampening = dampening
        self.maximumIterations = maximumIterations
        self.tolerance = tolerance
    }
}

/// Refits the weights a mask keeps (issue 15's weight reconstruction, after Wanda or magnitude chose the mask):
/// `pruned` [out, in] is a pruned weight whose zeros are the mask, `dense` the same weight before pruning. Each
/// row's kept weights w_S become the least-squares fit of the dense row's outputs on the calibration inputs X,
///
///     min ‖X·(w_dense − w)‖² + λ‖w_dense − w‖²  over w with w_j = 0 off S,
///     i.e.  (H_SS + λI) w_S = (H + λI)_S· w_dense,
///
/// H = 2XᵀX / n from `statistics`, λ = `options.dampening` × H's mean diagonal. Solved for every row at once by
/// conjugate gradients preconditioned with H's diagonal (each iteration one product of the rows' directions with
/// H), started from the masked dense row, until each row's residual falls to `options.tolerance` of its first or
/// `options.maximumIterations`. Zeros stay exactly where they were. Exact least squares, unlike SparseGPT's sweep
/// with a given mask, which only moves weights right of a pruned one and measured worse than no update at 70%.
///
/// Memory besides the weights: H in Float (built from the statistics without a Double copy), four [out, in] Float
/// buffers and a byte per weight for the mask.
@discardableResult
public func reconstructPrunedWeight(_ pruned: Tensor, dense: Tensor, statistics: InputStatistics,
                                    options: WeightReconstructionOptions = WeightReconstructionOptions()) throws(PruningError) -> WeightReconstructionSummary {
    let (rows, n) = try checkedWeightShape(pruned)
    guard dense.shape == pruned.shape else {
        throw .invalidOptions("the dense weight \(dense.shape) and the pruned one \(pruned.shape) differ in shape")
    }
    _ = try checkedWeightShape(dense)
    guard statistics.inputs == n else { throw .statisticsMismatch(weightInputs: n, statisticsInputs: statistics.inputs) }
    guard statistics.hasHessian else { throw .hessianNotCollected }
    guard options.dampening.isFinite, options.dampening >= 0 else {
        throw .invalidOptions("dampening \(options.dampening) is not a finite fraction ≥ 0")
    }
    guard options.maximumIterations >= 0, options.tolerance.isFinite, options.tolerance >= 0 else {
        throw .invalidOptions("\(options.maximumIterations) iterations to a tolerance of \(options.tolerance)")
    }
    // H + λI in Float for the products; its inverse diagonal preconditions (0 where the diagonal is: an input
    // never active in calibration, undamped, whose weight then keeps its start value).
    guard var h = statistics.hessian(as: Float.self) else { throw .noCalibrationRows }
    var meanDiagonal = 0.0
    for j in 0..<n { meanDiagonal += Double(h[j * n + j]) }
    meanDiagonal /= Double(n)
    guard meanDiagonal.isFinite else { throw .nonFinite(what: "Hessian", row: 0, column: 0) }
    let ridge = Float(options.dampening * meanDiagonal)
    var inverseDiagonal = [Float](repeating: 0, count: n)
    for j in 0..<n {
        h[j * n + j] += ridge
        let d = h[j * n + j]
        inverseDiagonal[j] = d > 0 ? 1 / d : 0
    }

    let count = rows * n
    let w = pruned.pointer, wd = UnsafePointer(dense.pointer)
    let buffers = UnsafeMutableBufferPointer<Float>.allocate(capacity: 4 * count)
    defer { buffers.deallocate() }
    let residual = buffers.baseAddress!, direction = residual + count, product = direction + count, step = product + count
    // Per weight whether it is kept (1 ⇔ the pruned weight is nonzero: the mask); per row r·z, the first residual
    // norm and whether it still iterates. Rows are independent, so their element-wise work runs in parallel with the
    // same result as serially.
    let kept = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: count)
    let rz = UnsafeMutableBufferPointer<Double>.allocate(capacity: rows)
    let first = UnsafeMutableBufferPointer<Double>.allocate(capacity: rows)
    let active = UnsafeMutableBufferPointer<Bool>.allocate(capacity: rows)
    defer { kept.deallocate(); rz.deallocate(); first.deallocate(); active.deallocate() }
    let rowChunk = max(1, 16_384 / n)
    // The start is the masked dense row, whatever `pruned` held; r = m ⊙ ((w_dense − w)(H + λI)): the difference
    // is w_dense on the pruned entries, 0 on the kept ones.
    WorkerPool.shared.parallelFor(count, minimumChunk: 16_384) { range in
        for i in range {
            let isKept = w[i] != 0
            kept[i] = isKept ? 1 : 0
            if isKept { w[i] = wd[i] }
            step[i] = isKept ? 0 : wd[i]
        }
    }
    // x ↦ x (H + λI) for [rows, n] buffers: one product per iteration.
    let timesH = { (x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) in
        h.withUnsafeBufferPointer { sgemm(transposeA: false, transposeB: false, m: rows, n: n, k: n, a: x, lda: n,
                                          b: $0.baseAddress!, ldb: n, c: out, ldc: n) }
    }
    timesH(step, residual)
    inverseDiagonal.withUnsafeBufferPointer { dInv in
        WorkerPool.shared.parallelFor(rows, minimumChunk: rowChunk) { range in
            for row in range {
                var dot = 0.0, norm = 0.0
                for j in 0..<n {
                    let i = row * n + j
                    if kept[i] == 0 { residual[i] = 0 }
                    direction[i] = residual[i] * dInv[j]
                    dot += Double(residual[i]) * Double(direction[i])
                    norm += Double(residual[i]) * Double(residual[i])
                }
                rz[row] = dot
                first[row] = norm.squareRoot()
                active[row] = norm > 0
            }
        }
    }
    var iterations = 0
    while iterations < options.maximumIterations, active.contains(true) {
        iterations += 1
        // q = m ⊙ (p (H + λI)) for every row (inactive rows have p = 0).
        timesH(direction, product)
        inverseDiagonal.withUnsafeBufferPointer { dInv in
            WorkerPool.shared.parallelFor(rows, minimumChunk: rowChunk) { range in
                for row in range where active[row] {
                    let base = row * n
                    var pq = 0.0
                    for j in 0..<n {
                        if kept[base + j] == 0 { product[base + j] = 0 }
                        pq += Double(direction[base + j]) * Double(product[base + j])
                    }
                    guard pq > 0 else {
                        active[row] = false
                        for j in 0..<n { direction[base + j] = 0 }
                        continue
                    }
                    let alpha = Float(rz[row] / pq)
                    var dot = 0.0, norm = 0.0
                    for j in 0..<n where kept[base + j] != 0 {
                        let i = base + j
                        w[i] += alpha * direction[i]
                        residual[i] -= alpha * product[i]
                        step[i] = residual[i] * dInv[j]
                        dot += Double(residual[i]) * Double(step[i])
                        norm += Double(residual[i]) * Double(residual[i])
                    }
                    let beta = Float(dot / rz[row])
                    rz[row] = dot
                    for j in 0..<n where kept[base + j] != 0 { direction[base + j] = step[base + j] + beta * direction[base + j] }
                    if norm.squareRoot() <= options.tolerance * first[row] {
                        active[row] = false
                        for j in 0..<n { direction[base + j] = 0 }
                    }
                }
            }
        }
    }
    _ = try checkedWeightShape(pruned)
    return WeightReconstructionSummary(iterations: iterations, unconvergedRows: active.count(where: { $0 }))
}

/// What a refit did.
public struct WeightReconstructionSummary: Sendable, Equatable {
    /// Conjugate-gradient iterations run.
    public let iterations: Int
    /// Rows still above the tolerance when the iterations ran out.
    public let unconvergedRows: Int
}
