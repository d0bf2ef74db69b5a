import Kernels

/// Rounds the kept weights of a pruned matrix to s4 values (docs/sparse-format.md: a scale per 64-column group of a
/// row × 16 levels) for the error of its outputs on calibration inputs rather than weight by weight: GPTQ (Frantar,
/// Ashkboos, Hoefler & Alistarh, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
/// Transformers", ICLR 2023) with the mask held fixed, as SparseGPT's joint prune-and-quantise pass keeps it.
///
/// Columns are rounded left to right; each rounding error is spread over the columns not yet rounded through the
/// factor U of H⁻¹ (H = XᵀX of `statistics`, dampened as SparseGPT's), so that later weights absorb it — including
/// unstored ones, which are then "rounded" to 0 in their turn, so the mask never changes. Blocks are the format's
/// 64-column groups: at a group's first column each row's scale is chosen from its stored values as they are then,
/// by the importance-weighted search (importances H_jj); errors within the group are spread at once, to the right
/// of it by one product (the lazy batch update).
///
/// On return `weight` holds exactly scale · level at every stored position and 0 elsewhere, and the scales
/// ([rows · groups] f16 bits, 0 for an empty group) are returned for `SparseMatrix.encodeS4`. Inputs never active in
/// calibration keep no error feedback (their weights are rounded as they are). Memory: as SparseGPT's.
public func roundS4WithHessian(_ weight: Tensor, statistics: InputStatistics,
                               dampening: Double = 0.01) throws(PruningError) -> [UInt16] {
    let (rows, n) = try checkedWeightShape(weight)
    guard statistics.inputs == n else { throw .statisticsMismatch(weightInputs: n, statisticsInputs: statistics.inputs) }
    guard statistics.hasHessian else { throw .hessianNotCollected }
    guard dampening.isFinite, dampening >= 0 else { throw .invalidOptions("dampening \(dampening) is not a finite fraction ≥ 0") }
    guard var hessian = statistics.hessian() else { throw .noCalibrationRows }
    let importance = (0..<n).map { Float(hessian[$0 * n + $0]) }
    let (factor, _) = try inverseHessianFactor(&hessian, order: n, dampening: dampening)
    defer { factor.deallocate() }
    hessian = []
    let u = UnsafePointer(factor.baseAddress!)
    let w = weight.pointer
    let group = SparseMatrix.groupSize, groups = (n + group - 1) / group
    // The stored positions, fixed before any update makes an unstored weight nonzero.
    let stored = UnsafeMutableBufferPointer<Bool>.allocate(capacity: max(rows * n, 1))
    let scales = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: max(rows * groups, 1))
    defer {
        stored.deallocate()
        scales.deallocate()
    }
    for i in 0..<(rows * n) { stored[i] = w[i] != 0 }
    scales.initialize(repeating: 0)
    let errors = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows * group)
    defer { errors.deallocate() }
    errors.initialize(repeating: 0)

    for g in 0..<groups {
        let start = g * group, end = min(start + group, n), width = end - start
        WorkerPool.shared.parallelFor(rows, minimumChunk: 4) { range in
            var values: [Float] = [], weights: [Float] = []
            values.reserveCapacity(group)
            weights.reserveCapacity(group)
            for row in range {
                let line = w + row * n + start
                let isStored = stored.baseAddress! + row * n + start
                values.removeAll(keepingCapacity: true)
                weights.removeAll(keepingCapacity: true)
                for j in 0..<width where isStored[j] {
                    values.append(line[j])
                    weights.append(importance[start + j])
                }
                let scale = SparseMatrix.s4Scale(values, weights: values.isEmpty ? nil : weights)
                scales[row * groups + g] = scale.bitPattern
                let s = Float(scale), inverse: Float = s == 0 ? 0 : 1 / s
                let rowErrors = errors.baseAddress! + row * group
                for i in 0..<width {
                    let value = line[i]
                    let rounded: Float = isStored[i]
                        ? s * Float(SparseMatrix.s4Levels[Int(SparseMatrix.s4Nibble(value * inverse))]) : 0
                    let d = u[(start + i) * n + start + i]
                    let step = (value - rounded) / d
                    rowErrors[i] = step
                    if step != 0 {
                        let uRow = u + (start + i) * n + start
                        for j in (i + 1)..<width { line[j] -= step * uRow[j] }
                    }
                    line[i] = rounded
                }
            }
        }
        // W[:, end:] −= E · U[start:end, end:].
        if end < n {
            sgemm(transposeA: false, transposeB: false, m: rows, n: n - end, k: width,
                  alpha: -1, a: errors.baseAddress!, lda: group, b: u + start * n + end, ldb: n,
                  beta: 1, c: w + end, ldc: n)
        }
    }
    _ = try checkedWeightShape(weight)
    return Array(scales.prefix(rows * groups))
}
