import Foundation

/// Next-token cross-entropy: the mean over rows of −log softmax(logits)[target],
/// with its gradient; and the chunked form that starts from the final hidden
/// states and the LM head, so a large vocabulary never needs all N × V logits.
///
/// Shapes: logits, dLogits [N, V]; targets [N] (token ids, < 0 = ignore the
/// row); lossPerRow [N]; hidden, dHidden [N, C]; weight [V, C] (row-major,
/// logits = hidden · weightᵀ); scratch [chunkRows, V].
///
/// Loss and gradient are one fused pass, since the gradient needs the softmax
/// the loss computes:
///
///     loss   = (1/M) Σ_n (logsumexp(x_n) − x_n[t_n]),   M = rows with t_n ≥ 0
///     dx_n   = (softmax(x_n) − onehot(t_n)) / M            (0 for ignored rows)
///
/// dLogits is written, not accumulated, so that it can overwrite the logits in
/// place (the chunked form relies on that); dHidden accumulates (+=), the
/// caller zeroes it. Losses are summed in Double. With no row to score the
/// loss is 0 and every gradient 0.

// MARK: - Rows

/// The number of rows that have a target, checking every target against the vocabulary.
func countTargets(_ targets: UnsafePointer<Int32>, rows: Int, vocabulary: Int) -> Int {
    var count = 0
    for row in 0..<rows where targets[row] >= 0 {
        precondition(Int(targets[row]) < vocabulary,
                     "crossEntropy: target \(targets[row]) of row \(row) is outside the vocabulary of \(vocabulary)")
        count += 1
    }
    return count
}

/// −log softmax(logits)[target] for one row; when `dLogits` is given (it may be
/// `logits`) writes (softmax(logits) − onehot(target)) · scale into it.   logits, dLogits: [V]
@inline(__always)
func crossEntropyRow(_ logits: UnsafePointer<Float>, target: Int, columns: Int, scale: Double,
                     dLogits: UnsafeMutablePointer<Float>?) -> Double {
    // Read before an in-place gradient overwrites it.
    let targetLogit = logits[target]
    let maximum = rowMaximum(logits, count: columns)
    let sum = sumOfShiftedExponentials(logits, shift: maximum, out: dLogits, count: columns)
    if let dLogits {
        scaleRow(dLogits, by: Float(scale / sum), count: columns)
        dLogits[target] -= Float(scale)
    }
    return Double(maximum) + log(sum) - Double(targetLogit)
}

/// The cross-entropy of soft-capped logits c = cap·tanh(z / cap) (Gemma 2's final capping) for one row
/// of raw logits z, which it overwrites: with c first, then — when `gradient` — with
/// ∂loss/∂z = (softmax(c) − onehot(target))·scale·(1 − (c / cap)²). Each element's gradient needs
/// only its own c, so the row is rewritten in place without a second buffer.   logits: [V]
func softcappedCrossEntropyRow(_ logits: UnsafeMutablePointer<Float>, target: Int, columns: Int, scale: Double,
                               cap: Float, gradient: Bool) -> Double {
    let twoOverCap = SIMD16<Float>(repeating: 2 / cap), capVector = SIMD16<Float>(repeating: cap)
    var i = 0
    while i + 16 <= columns {
        VectorMath.store(capVector * (2 * VectorMath.sigmoid(twoOverCap * VectorMath.load(logits + i)) - 1), to: logits + i)
        i += 16
    }
    while i < columns {
        logits[i] = cap * (2 * VectorMath.sigmoid(2 / cap * logits[i]) - 1)
        i += 1
    }
    let targetLogit = logits[target]
    let maximum = rowMaximum(logits, count: columns)
    let sum = sumOfShiftedExponentials(logits, shift: maximum, out: nil, count: columns)
    if gradient {
        let factor = Float(scale / sum), inverseCap = 1 / cap
        for j in 0..<columns {
            let c = logits[j], t = c * inverseCap
            let probability = VectorMath.exp(c - maximum) * factor - (j == target ? Float(scale) : 0)
            logits[j] = probability * (1 - t * t)
        }
    }
    return Double(maximum) + log(sum) - Double(targetLogit)
}

/// Each row's loss into `nll` (0 for ignored rows), and its gradient times `scale` into `dLogits` when given.   logits, dLogits: [N, V]; targets, nll: [N]
func crossEntropyRows(logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>, rows: Int, columns: Int,
                      scale: Double, dLogits: UnsafeMutablePointer<Float>?, nll: UnsafeMutablePointer<Double>) {
    WorkerPool.shared.parallelFor(rows, minimumChunk: softmaxMinimumRows(columns: columns)) { range in
        for row in range {
            let start = row * columns
            let target = Int(targets[row])
            guard target >= 0 else {
                nll[row] = 0
                dLogits?.advanced(by: start).update(repeating: 0, count: columns)
                continue
            }
            nll[row] = crossEntropyRow(logits + start, target: target, columns: columns, scale: scale,
                                       dLogits: dLogits?.advanced(by: start))
        }
    }
}

/// `softcappedCrossEntropyRow` over rows in parallel; an ignored row gets loss 0 and gradient 0.   logits: [N, V]
func softcappedCrossEntropyRows(_ logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, rows: Int,
                                columns: Int, scale: Double, cap: Float, gradient: Bool, nll: UnsafeMutablePointer<Double>) {
    WorkerPool.shared.parallelFor(rows, minimumChunk: softmaxMinimumRows(columns: columns)) { range in
        for row in range {
            let start = row * columns, target = Int(targets[row])
            guard target >= 0 else {
                nll[row] = 0
                if gradient { logits.advanced(by: start).update(repeating: 0, count: columns) }
                continue
            }
            nll[row] = softcappedCrossEntropyRow(logits + start, target: target, columns: columns, scale: scale,
                                                 cap: cap, gradient: gradient)
        }
    }
}

// MARK: - Cross-entropy on logits

/// Mean cross-entropy of `logits` against `targets`; writes the mean's gradient into `dLogits` (may be `logits`) and per-row NLL into `lossPerRow` when given.   logits, dLogits: [N, V]; targets, lossPerRow: [N]
public func crossEntropy(logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>, rows: Int, vocabulary: Int,
                         dLogits: UnsafeMutablePointer<Float>?, lossPerRow: UnsafeMutablePointer<Float>?) -> Double {
    precondition(rows >= 0 && vocabulary > 0, "crossEntropy: \(rows) rows of \(vocabulary) logits")
    let scored = countTargets(targets, rows: rows, vocabulary: vocabulary)
    let scale = scored > 0 ? 1 / Double(scored) : 0
    return withUnsafeTemporaryAllocation(of: Double.self, capacity: max(rows, 1)) { nll in
        crossEntropyRows(logits: logits, targets: targets, rows: rows, columns: vocabulary,
                         scale: scale, dLogits: dLogits, nll: nll.baseAddress!)
        var total = 0.0
        for row in 0..<rows {
            total += nll[row]
            lossPerRow?[row] = Float(nll[row])
        }
        return total * scale
    }
}

// MARK: - Chunked cross-entropy through the LM head

/// Mean cross-entropy of logits = hidden · weightᵀ, `chunkRows` rows at a time in `scratch`; dHidden += ∂loss/∂hidden and per-row NLL into `lossPerRow` when given.   hidden, dHidden: [N, C]; weight: [V, C]; targets, lossPerRow: [N]; scratch: [chunkRows, V]
public func chunkedCrossEntropy(hidden: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                targets: UnsafePointer<Int32>, rows: Int, hiddenSize: Int, vocabulary: Int,
                                chunkRows: Int, scratch: UnsafeMutablePointer<Float>,
                                dHidden: UnsafeMutablePointer<Float>?, lossPerRow: UnsafeMutablePointer<Float>?,
                                softcap: Float? = nil) -> Double {
    precondition(rows >= 0 && hiddenSize > 0 && vocabulary > 0 && chunkRows > 0,
                 "chunkedCrossEntropy: \(rows) rows, hidden \(hiddenSize), vocabulary \(vocabulary), chunks of \(chunkRows)")
    let scored = countTargets(targets, rows: rows, vocabulary: vocabulary)
    let scale = scored > 0 ? 1 / Double(scored) : 0
    let chunk = min(chunkRows, max(rows, 1))
    return withUnsafeTemporaryAllocation(of: Double.self, capacity: chunk) { nll in
        var total = 0.0
        var start = 0
        while start < rows {
            // logits_c = hidden_c · weightᵀ; loss and dLogits in place; then the backward of that
            // product, dHidden_c += dLogits · weight.
            let count = min(chunk, rows - start)
            sgemm(transposeA: false, transposeB: true, m: count, n: vocabulary, k: hiddenSize,
                  a: hidden + start * hiddenSize, lda: hiddenSize, b: weight, ldb: hiddenSize,
                  beta: 0, c: scratch, ldc: vocabulary)
            if let softcap {
                softcappedCrossEntropyRows(scratch, targets: targets + start, rows: count, columns: vocabulary,
                                           scale: scale, cap: softcap, gradient: dHidden != nil, nll: nll.baseAddress!)
            } else {
                crossEntropyRows(logits: scratch, targets: targets + start, rows: count, columns: vocabulary,
                                 scale: scale, dLogits: dHidden == nil ? nil : scratch, nll: nll.baseAddress!)
            }
            for row in 0..<count {
                total += nll[row]
                lossPerRow?[start + row] = Float(nll[row])
            }
            if let dHidden {
                sgemm(transposeA: false, transposeB: false, m: count, n: hiddenSize, k: vocabulary,
                      a: scratch, lda: vocabulary, b: weight, ldb: hiddenSize,
                      beta: 1, c: dHidden + start * hiddenSize, ldc: hiddenSize)
            }
            start += count
        }
        return total * scale
    }
}

// MARK: - Tensors

/// Mean cross-entropy of logits [..., V] against one target per row; writes the gradient into `dLogits` (may be `logits`) and per-row NLL into `lossPerRow` [N] when given.
public func crossEntropy(logits: Tensor, targets: [Int32], dLogits: Tensor? = nil, lossPerRow: Tensor? = nil) -> Double {
    let (rows, vocabulary) = (logits.rowCount, logits.rowLength)
    precondition(targets.count == rows, "crossEntropy: \(targets.count) targets for \(rows) rows of logits \(logits.shape)")
    if let dLogits { requireSameShape("crossEntropy", logits, dLogits) }
    if let lossPerRow {
        precondition(lossPerRow.count == rows, "crossEntropy: lossPerRow \(lossPerRow.shape) for \(rows) rows")
    }
    guard rows > 0 else { return 0 }
    return targets.withUnsafeBufferPointer { targets in
        crossEntropy(logits: logits.pointer, targets: targets.baseAddress!, rows: rows, vocabulary: vocabulary,
                     dLogits: dLogits?.pointer, lossPerRow: lossPerRow?.pointer)
    }
}

/// Mean cross-entropy of hidden [..., C] · weightᵀ ([V, C]) against one target per row, `chunkRows` rows of logits at a time in `scratch` (≥ min(chunkRows, N) × V values, allocated per call when nil); dHidden += ∂loss/∂hidden when given.
public func chunkedCrossEntropy(hidden: Tensor, weight: Tensor, targets: [Int32], chunkRows: Int,
                                dHidden: Tensor? = nil, lossPerRow: Tensor? = nil, scratch: Tensor? = nil,
                                softcap: Float? = nil) -> Double {
    let (rows, hiddenSize) = (hidden.rowCount, hidden.rowLength)
    let vocabulary = weight.rowCount
    precondition(weight.rank == 2 && weight.rowLength == hiddenSize,
                 "chunkedCrossEntropy: weight \(weight.shape) is not [vocabulary, \(hiddenSize)]")
    precondition(targets.count == rows, "chunkedCrossEntropy: \(targets.count) targets for \(rows) rows of hidden \(hidden.shape)")
    precondition(chunkRows > 0, "chunkedCrossEntropy: chunkRows \(chunkRows) must be positive")
    if let dHidden { requireSameShape("chunkedCrossEntropy", hidden, dHidden) }
    if let lossPerRow {
        precondition(lossPerRow.count == rows, "chunkedCrossEntropy: lossPerRow \(lossPerRow.shape) for \(rows) rows")
    }
    let needed = min(chunkRows, max(rows, 1)) * vocabulary
    if let scratch {
        precondition(scratch.count >= needed, "chunkedCrossEntropy: scratch \(scratch.shape) holds fewer than \(needed) logits")
    }
    guard rows > 0 else { return 0 }
    let buffer = scratch ?? Tensor(zeros: [needed])
    return targets.withUnsafeBufferPointer { targets in
        chunkedCrossEntropy(hidden: hidden.pointer, weight: weight.pointer, targets: targets.baseAddress!,
                            rows: rows, hiddenSize: hiddenSize, vocabulary: vocabulary, chunkRows: chunkRows,
                            scratch: buffer.pointer, dHidden: dHidden?.pointer, lossPerRow: lossPerRow?.pointer,
                            softcap: softcap)
    }
}

/// The mean cross-entropy of `chunkedCrossEntropy` (no gradient) through a head in any form: a
/// compressed head multiplies each chunk of rows in place (evaluation of a model read in place).
///
/// hidden [N, C]; head [V, C]; targets [N]; scratch ≥ [min(chunkRows, N), V].
public func chunkedCrossEntropy(hidden: Tensor, head: LinearWeight, targets: [Int32], chunkRows: Int,
                                scratch: Tensor, matmulScratch: CompressedMatmulScratch, softcap: Float? = nil) -> Double {
    if case .dense(let weight) = head {
        return chunkedCrossEntropy(hidden: hidden, weight: weight, targets: targets, chunkRows: chunkRows, scratch: scratch,
                                   softcap: softcap)
    }
    let (rows, vocabulary) = (hidden.rowCount, head.rows)
    precondition(head.cols == hidden.rowLength && targets.count == rows && chunkRows > 0,
                 "chunkedCrossEntropy: head [\(head.rows), \(head.cols)], hidden \(hidden.shape), \(targets.count) targets")
    let chunk = min(chunkRows, max(rows, 1))
    precondition(scratch.count >= chunk * vocabulary, "chunkedCrossEntropy: scratch \(scratch.shape) for \(chunk) rows of \(vocabulary)")
    guard rows > 0 else { return 0 }
    return targets.withUnsafeBufferPointer { targets in
        let scored = countTargets(targets.baseAddress!, rows: rows, vocabulary: vocabulary)
        let scale = scored > 0 ? 1 / Double(scored) : 0
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: chunk) { nll in
            var total = 0.0, start = 0
            while start < rows {
                let count = min(chunk, rows - start)
                let logits = scratch.reshaped([scratch.count]).slice(0..<(count * vocabulary)).reshaped([count, vocabulary])
                head.apply(hidden.slice(start..<(start + count)), into: logits, scratch: matmulScratch)
                if let softcap {
                    softcappedCrossEntropyRows(logits.pointer, targets: targets.baseAddress! + start, rows: count,
                                               columns: vocabulary, scale: scale, cap: softcap, gradient: false,
                                               nll: nll.baseAddress!)
                } else {
                    crossEntropyRows(logits: logits.pointer, targets: targets.baseAddress! + start, rows: count, columns: vocabulary,
                                     scale: scale, dLogits: nil, nll: nll.baseAddress!)
                }
                for row in 0..<count { total += nll[row] }
                start += count
            }
            return total * scale
        }
    }
}
