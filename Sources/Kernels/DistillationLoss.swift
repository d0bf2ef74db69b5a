import Foundation

/// Distillation from a teacher's next-token distribution, fused with next-token cross-entropy: both
/// losses share the student's logits, so one chunk of logits (and one backward product through the
/// LM head) serves both. Hinton et al. 2015, "Distilling the Knowledge in a Neural Network": at
/// temperature τ the student matches the teacher's softened distribution, and the KL term is
/// multiplied by τ² so its gradient keeps the scale of the τ = 1 case.
///
/// Shapes: student, teacher, dStudent [N, C] (final normed hidden states); weight [V, C] (the LM
/// head, logits = hidden · weightᵀ, shared by teacher and student); targets [N] (< 0 = row not
/// scored by either term); studentScratch, teacherScratch [chunkRows, V].
///
///     s_n = student_n · Wᵀ,   t_n = teacher_n · Wᵀ,   M = rows with t_n ≥ 0
///     ce  = (1/M) Σ_n (logsumexp(s_n) − s_n[target_n])
///     kl  = (1/M) Σ_n τ² · KL(softmax(t_n/τ) ‖ softmax(s_n/τ))
///     ∂(w_ce·ce + w_kl·kl)/∂s_n = (w_ce·(softmax(s_n) − onehot) + w_kl·τ·(softmax(s_n/τ) − softmax(t_n/τ))) / M
///
/// dStudent accumulates (+=) that gradient through the head; the caller zeroes it. Losses summed in Double.
/// With a final logit cap c (Gemma 2), both models' logits are c·tanh(x/c) before either loss, as their forward
/// computes them, and the gradient reaches the uncapped logits times 1 − (capped/c)².

/// The two losses of one chunk of logits.
public struct DistillationLosses: Sendable, Equatable {
    public var crossEntropy: Double
    public var distillation: Double

    public init(crossEntropy: Double = 0, distillation: Double = 0) {
        self.crossEntropy = crossEntropy
        self.distillation = distillation
    }
}

// MARK: - One row

/// (cross-entropy, τ²·KL) of one row; when `gradient` is true, overwrites `student` with
/// ceScale·(softmax(s) − onehot) + klScale·τ·(softmax(s/τ) − softmax(t/τ)) and `teacher` with scratch.
///   student, teacher: [V]
@inline(__always)
func distillationRow(student s: UnsafeMutablePointer<Float>, teacher t: UnsafeMutablePointer<Float>, target: Int,
                     columns: Int, temperature: Float, ceScale: Double, klScale: Double, gradient: Bool) -> (Double, Double) {
    let targetLogit = s[target]
    let ms = rowMaximum(s, count: columns), mt = rowMaximum(t, count: columns)
    // p_s at temperature 1 (cross-entropy).
    let sumS1 = sumOfShiftedExponentials(s, shift: ms, out: nil, count: columns)
    // Softened distributions: z = (x − max)/τ ≤ 0. Σ p_t (z_t − z_s) is gathered before anything is overwritten;
    // e^(z_t) goes into the teacher row.
    let inverse = 1 / temperature
    var sumS = 0.0, sumT = 0.0, cross = 0.0
    do {
        let shiftS = SIMD16<Float>(repeating: ms), shiftT = SIMD16<Float>(repeating: mt)
        let scale = SIMD16<Float>(repeating: inverse)
        var i = 0
        while i + 16 <= columns {
            var partialS = SIMD16<Float>(), partialT = SIMD16<Float>(), partialCross = SIMD16<Float>()
            let blockEnd = min(columns, i + 256)
            while i + 16 <= blockEnd {
                let zs = (VectorMath.load(s + i) - shiftS) * scale, zt = (VectorMath.load(t + i) - shiftT) * scale
                let es = VectorMath.exp(zs), et = VectorMath.exp(zt)
                partialS += es
                partialT += et
                partialCross += et * (zt - zs)
                VectorMath.store(et, to: t + i)
                i += 16
            }
            sumS += Double(partialS.sum())
            sumT += Double(partialT.sum())
            cross += Double(partialCross.sum())
        }
        while i < columns {
            let zs = (s[i] - ms) * inverse, zt = (t[i] - mt) * inverse
            let es = VectorMath.exp(zs), et = VectorMath.exp(zt)
            sumS += Double(es)
            sumT += Double(et)
            cross += Double(et * (zt - zs))
            t[i] = et
            i += 1
        }
    }
    let crossEntropy = Double(ms) + log(sumS1) - Double(targetLogit)
    // KL = Σ p_t (log p_t − log p_s) = Σ p_t (z_t − z_s) − log Σe^(z_t) + log Σe^(z_s)
    let tau = Double(temperature)
    let distillation = tau * tau * (cross / sumT - log(sumT) + log(sumS))
    if gradient {
        let a1 = Float(ceScale / sumS1), aTau = Float(klScale * tau / sumS), bTau = Float(klScale * tau / sumT)
        let shift = SIMD16<Float>(repeating: ms), scale = SIMD16<Float>(repeating: inverse)
        let va1 = SIMD16<Float>(repeating: a1), vaTau = SIMD16<Float>(repeating: aTau), vbTau = SIMD16<Float>(repeating: bTau)
        var i = 0
        while i + 16 <= columns {
            let x = VectorMath.load(s + i) - shift
            let g = va1 * VectorMath.exp(x) + vaTau * VectorMath.exp(x * scale) - vbTau * VectorMath.load(t + i)
            VectorMath.store(g, to: s + i)
            i += 16
        }
        while i < columns {
            let x = s[i] - ms
            s[i] = a1 * VectorMath.exp(x) + aTau * VectorMath.exp(x * inverse) - bTau * t[i]
            i += 1
        }
        s[target] -= Float(ceScale)
    }
    return (crossEntropy, distillation)
}

/// The same row in Double, written for clarity: the reference the fast row is tested against.
/// Returns (cross-entropy, τ²·KL, gradient with respect to the student's logits).   student, teacher: [V]
public func distillationRowReference(student: [Float], teacher: [Float], target: Int, temperature: Double,
                                     ceScale: Double, klScale: Double) -> (Double, Double, [Double]) {
    func logSoftmax(_ x: [Double]) -> [Double] {
        let m = x.max()!
        let lse = m + log(x.reduce(0) { $0 + exp($1 - m) })
        return x.map { $0 - lse }
    }
    let s = student.map(Double.init), t = teacher.map(Double.init)
    let logP = logSoftmax(s), logPs = logSoftmax(s.map { $0 / temperature }), logPt = logSoftmax(t.map { $0 / temperature })
    let kl = zip(logPt, logPs).reduce(0) { $0 + exp($1.0) * ($1.0 - $1.1) } * temperature * temperature
    var gradient = (0..<s.count).map { v in
        ceScale * exp(logP[v]) + klScale * temperature * (exp(logPs[v]) - exp(logPt[v]))
    }
    gradient[target] -= ceScale
    return (-logP[target], kl, gradient)
}

// MARK: - Chunked through the LM head

/// Mean cross-entropy and mean τ²·KL from the teacher of logits = hidden · weightᵀ (capped by `softcap` when given),
/// `chunkRows` rows at a time; dStudent += ∂(ceWeight·ce + klWeight·kl)/∂student when given.
///   student, teacher, dStudent: [N, C]; weight: [V, C]; targets: [N]; studentScratch, teacherScratch: [chunkRows, V]
public func chunkedDistillation(student: UnsafePointer<Float>, teacher: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                targets: UnsafePointer<Int32>, rows: Int, hiddenSize: Int, vocabulary: Int,
                                chunkRows: Int, temperature: Float, ceWeight: Double, klWeight: Double,
                                studentScratch: UnsafeMutablePointer<Float>, teacherScratch: UnsafeMutablePointer<Float>,
                                dStudent: UnsafeMutablePointer<Float>?, softcap: Float? = nil) -> DistillationLosses {
    precondition(rows >= 0 && hiddenSize > 0 && vocabulary > 0 && chunkRows > 0,
                 "chunkedDistillation: \(rows) rows, hidden \(hiddenSize), vocabulary \(vocabulary), chunks of \(chunkRows)")
    precondition(temperature > 0 && temperature.isFinite, "chunkedDistillation: temperature \(temperature) must be positive")
    let scored = countTargets(targets, rows: rows, vocabulary: vocabulary)
    let scale = scored > 0 ? 1 / Double(scored) : 0
    let chunk = min(chunkRows, max(rows, 1))
    let studentLogits = studentScratch, teacherLogits = teacherScratch
    let gradient = dStudent != nil && (ceWeight != 0 || klWeight != 0)
    return withUnsafeTemporaryAllocation(of: (Double, Double).self, capacity: chunk) { perRow in
        var total = DistillationLosses()
        var start = 0
        while start < rows {
            let count = min(chunk, rows - start)
            for (hidden, logits) in [(student, studentLogits), (teacher, teacherLogits)] {
                sgemm(transposeA: false, transposeB: true, m: count, n: vocabulary, k: hiddenSize,
                      a: hidden + start * hiddenSize, lda: hiddenSize, b: weight, ldb: hiddenSize,
                      beta: 0, c: logits, ldc: vocabulary)
                if let softcap { softcapForward(logits, count: count * vocabulary, cap: softcap) }
            }
            WorkerPool.shared.parallelFor(count, minimumChunk: softmaxMinimumRows(columns: 4 * vocabulary)) { range in
                // The capped student row, kept for the cap's derivative once the row holds its gradient.
                let capped = softcap != nil && gradient ? UnsafeMutablePointer<Float>.allocate(capacity: vocabulary) : nil
                defer { capped?.deallocate() }
                for row in range {
                    let target = Int(targets[start + row])
                    guard target >= 0 else {
                        perRow[row] = (0, 0)
                        studentLogits.advanced(by: row * vocabulary).update(repeating: 0, count: vocabulary)
                        continue
                    }
                    let studentRow = studentLogits + row * vocabulary
                    capped?.update(from: studentRow, count: vocabulary)
                    perRow[row] = distillationRow(student: studentRow, teacher: teacherLogits + row * vocabulary,
                                                  target: target, columns: vocabulary, temperature: temperature,
                                                  ceScale: ceWeight * scale, klScale: klWeight * scale, gradient: gradient)
                    if let capped, let softcap {
                        softcapBackward(dY: studentRow, y: capped, dX: studentRow, range: 0..<vocabulary, cap: softcap)
                    }
                }
            }
            for row in 0..<count {
                total.crossEntropy += perRow[row].0
                total.distillation += perRow[row].1
            }
            if gradient, let dStudent {
                // dStudent_c += dLogits · weight
                sgemm(transposeA: false, transposeB: false, m: count, n: hiddenSize, k: vocabulary,
                      a: studentLogits, lda: vocabulary, b: weight, ldb: hiddenSize,
                      beta: 1, c: dStudent + start * hiddenSize, ldc: hiddenSize)
            }
            start += count
        }
        total.crossEntropy *= scale
        total.distillation *= scale
        return total
    }
}

/// Tensor form: student, teacher, dStudent [..., C]; weight [V, C]; one target per row; each scratch ≥ min(chunkRows, N) · V
/// values (allocated per call when nil).
public func chunkedDistillation(student: Tensor, teacher: Tensor, weight: Tensor, targets: [Int32], chunkRows: Int,
                                temperature: Float, ceWeight: Double, klWeight: Double,
                                dStudent: Tensor? = nil, studentScratch: Tensor? = nil,
                                teacherScratch: Tensor? = nil, softcap: Float? = nil) -> DistillationLosses {
    let (rows, hiddenSize) = (student.rowCount, student.rowLength)
    let vocabulary = weight.rowCount
    requireSameShape("chunkedDistillation", student, teacher)
    precondition(weight.rank == 2 && weight.rowLength == hiddenSize,
                 "chunkedDistillation: weight \(weight.shape) is not [vocabulary, \(hiddenSize)]")
    precondition(targets.count == rows, "chunkedDistillation: \(targets.count) targets for \(rows) rows of \(student.shape)")
    precondition(chunkRows > 0, "chunkedDistillation: chunkRows \(chunkRows) must be positive")
    if let dStudent { requireSameShape("chunkedDistillation", student, dStudent) }
    let needed = min(chunkRows, max(rows, 1)) * vocabulary
    for scratch in [studentScratch, teacherScratch].compactMap({ $0 }) {
        precondition(scratch.count >= needed, "chunkedDistillation: scratch \(scratch.shape) holds fewer than \(needed) logits")
    }
    guard rows > 0 else { return DistillationLosses() }
    let studentBuffer = studentScratch ?? Tensor(zeros: [needed]), teacherBuffer = teacherScratch ?? Tensor(zeros: [needed])
    return targets.withUnsafeBufferPointer { targets in
        chunkedDistillation(student: student.pointer, teacher: teacher.pointer, weight: weight.pointer,
                            targets: targets.baseAddress!, rows: rows, hiddenSize: hiddenSize, vocabulary: vocabulary,
                            chunkRows: chunkRows, temperature: temperature, ceWeight: ceWeight, klWeight: klWeight,
                            studentScratch: studentBuffer.pointer, teacherScratch: teacherBuffer.pointer,
                            dStudent: dStudent?.pointer, softcap: softcap)
    }
}
