/// RMSNorm (Zhang & Sennrich, "Root Mean Square Layer Normalization", 2019),
/// as LLaMA applies it over the hidden dimension of each row:
///
///     y = x / sqrt(mean(x²) + eps) ⊙ w
///
/// Shapes: x, y, dY, dX [N, C]; w, dW [C]; rrms [N], the per-row reciprocal
/// RMS 1 / sqrt(mean(x²) + eps) that forward may save for backward.
/// Rows are independent and spread over `WorkerPool.shared`.

/// Rows per parallel chunk: enough that a chunk holds about 32K values, so
/// that waking the pool (a few microseconds) stays small next to the work and
/// small inputs run serially on the caller.
func rmsNormMinimumRows(columns: Int) -> Int {
    max(1, (1 << 15) / max(columns, 1))
}

// MARK: - Forward

/// y = x / sqrt(mean(x²) + eps) ⊙ w over `rows` rows of `columns` values, saving 1/rms per row into `reciprocalRMS` when given.
public func rmsNormForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           y: UnsafeMutablePointer<Float>, reciprocalRMS: UnsafeMutablePointer<Float>?,
                           rows: Int, columns: Int, epsilon: Float) {
    precondition(rows >= 0 && columns > 0, "rmsNorm: \(rows) rows of \(columns) columns")
    WorkerPool.shared.parallelFor(rows, minimumChunk: rmsNormMinimumRows(columns: columns)) { range in
        for row in range {
            let xRow = x + row * columns, yRow = y + row * columns
            let r = rowReciprocalRMS(xRow, columns: columns, epsilon: epsilon)
            reciprocalRMS?[row] = r
            // y = (x · r) ⊙ w
            let rVector = SIMD16<Float>(repeating: r)
            var i = 0
            while i + 16 <= columns {
                let v = VectorMath.load(xRow + i) * rVector * VectorMath.load(weight + i)
                VectorMath.store(v, to: yRow + i)
                i += 16
            }
            while i < columns {
                yRow[i] = xRow[i] * r * weight[i]
                i += 1
            }
        }
    }
}

// MARK: - Backward

/// Accumulates the gradients of RMSNorm: dX += ∂L/∂x and dW += ∂L/∂w given dY = ∂L/∂y; recomputes 1/rms when `reciprocalRMS` is nil.
///
/// Forward: y_j = x_j · r · w_j with r = (mean(x²) + eps)^(-1/2), so
/// ∂r/∂x_i = −r³ · x_i / C, and
///
///     dx_i = r · dy_i · w_i − (r³ / C) · x_i · Σ_j dy_j · w_j · x_j
///     dw_j = Σ_rows dy_j · x_j · r
///
/// dW sums over rows: each parallel chunk adds its rows into its own partial
/// row, and the partials are summed in chunk order once all are done, so no
/// two threads write the same value and the result does not depend on timing.
public func rmsNormBackward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            reciprocalRMS: UnsafePointer<Float>?,
                            dX: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
                            rows: Int, columns: Int, epsilon: Float) {
    precondition(rows >= 0 && columns > 0, "rmsNorm backward: \(rows) rows of \(columns) columns")
    guard rows > 0 else { return }
    let minimumRows = rmsNormMinimumRows(columns: columns)
    let chunkCount = min(WorkerPool.shared.threadCount, max(1, rows / minimumRows))

    // Rows lower..<upper, with this chunk's dW contributions added into `dWeightTarget`.
    func backwardRows(_ lower: Int, _ upper: Int, dWeightTarget: UnsafeMutablePointer<Float>) {
        let inverseColumns = 1 / Float(columns)
        for row in lower..<upper {
            let xRow = x + row * columns, dyRow = dY + row * columns, dxRow = dX + row * columns
            let r = reciprocalRMS?[row]
                ?? rowReciprocalRMS(xRow, columns: columns, epsilon: epsilon)
            // Σ_j dy_j · w_j · x_j
            var dotVector = SIMD16<Float>()
            var i = 0
            while i + 16 <= columns {
                dotVector.addProduct(VectorMath.load(dyRow + i) * VectorMath.load(weight + i), VectorMath.load(xRow + i))
                i += 16
            }
            var dot = dotVector.sum()
            while i < columns {
                dot += dyRow[i] * weight[i] * xRow[i]
                i += 1
            }
            let c = r * r * r * inverseColumns * dot
            let rVector = SIMD16<Float>(repeating: r), cVector = SIMD16<Float>(repeating: c)
            i = 0
            while i + 16 <= columns {
                let dy = VectorMath.load(dyRow + i), xv = VectorMath.load(xRow + i)
                // The row's gradient first, then one addition onto what dX held.
                let rowGradient = rVector * dy * VectorMath.load(weight + i) - cVector * xv
                VectorMath.store(VectorMath.load(dxRow + i) + rowGradient, to: dxRow + i)
                VectorMath.store(VectorMath.load(dWeightTarget + i) + dy * xv * rVector, to: dWeightTarget + i)
                i += 16
            }
            while i < columns {
                dxRow[i] += r * dyRow[i] * weight[i] - c * xRow[i]
                dWeightTarget[i] += dyRow[i] * xRow[i] * r
                i += 1
            }
        }
    }

    // One zeroed partial dW per chunk, summed in chunk order and then added to
    // dW once, so that dW = prior + (this call's gradient) rounds like dX does.
    // A loop run serially (a nested call) fills the same partials: same bits.
    let partials = TensorStorage(count: chunkCount * columns)
    WorkerPool.shared.parallelFor(chunkCount, minimumChunk: 1) { chunks in
        for chunk in chunks {
            backwardRows(rows * chunk / chunkCount, rows * (chunk + 1) / chunkCount,
                         dWeightTarget: partials.base + chunk * columns)
        }
    }
    let total = partials.base
    for chunk in 1..<chunkCount {
        addForward(total, partials.base + chunk * columns, out: total, count: columns)
    }
    addForward(dWeight, total, out: dWeight, count: columns)
}

// MARK: - Tensors

/// RMSNorm of `x` [N, C] with weight [C] into `y` [N, C], saving 1/rms into `reciprocalRMS` [N] when given.
public func rmsNorm(_ x: Tensor, weight: Tensor, epsilon: Float, into y: Tensor, reciprocalRMS: Tensor? = nil) {
    let (rows, columns) = (x.rowCount, x.rowLength)
    precondition(weight.count == columns, "rmsNorm: weight \(weight.shape) for rows of \(columns)")
    precondition(y.count == x.count, "rmsNorm: output \(y.shape) for input \(x.shape)")
    if let reciprocalRMS {
        precondition(reciprocalRMS.count == rows, "rmsNorm: reciprocal RMS \(reciprocalRMS.shape) for \(rows) rows")
    }
    rmsNormForward(x: x.pointer, weight: weight.pointer, y: y.pointer, reciprocalRMS: reciprocalRMS?.pointer,
                   rows: rows, columns: columns, epsilon: epsilon)
}

/// RMSNorm of `x` [N, C] with weight [C], as a new tensor of `x`'s shape.
public func rmsNorm(_ x: Tensor, weight: Tensor, epsilon: Float) -> Tensor {
    let y = Tensor(zeros: x.shape)
    rmsNorm(x, weight: weight, epsilon: epsilon, into: y)
    return y
}

/// Accumulates RMSNorm's gradients into `dX` [N, C] and `dWeight` [C] (the caller zeroes them); `reciprocalRMS` [N] as forward saved it, or nil to recompute.
public func rmsNormBackward(_ dY: Tensor, x: Tensor, weight: Tensor, reciprocalRMS: Tensor?, epsilon: Float,
                            dX: Tensor, dWeight: Tensor) {
    let (rows, columns) = (x.rowCount, x.rowLength)
    precondition(dY.count == x.count && dX.count == x.count,
                 "rmsNorm backward: dY \(dY.shape), dX \(dX.shape) for input \(x.shape)")
    precondition(weight.count == columns && dWeight.count == columns,
                 "rmsNorm backward: weight \(weight.shape), dWeight \(dWeight.shape) for rows of \(columns)")
    if let reciprocalRMS {
        precondition(reciprocalRMS.count == rows, "rmsNorm backward: reciprocal RMS \(reciprocalRMS.shape) for \(rows) rows")
    }
    rmsNormBackward(dY: dY.pointer, x: x.pointer, weight: weight.pointer, reciprocalRMS: reciprocalRMS?.pointer,
                    dX: dX.pointer, dWeight: dWeight.pointer, rows: rows, columns: columns, epsilon: epsilon)
}

// MARK: - Reference

/// The forward pass computed naively in Double, for tests of the fast path.
public func referenceRMSNormForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                    y: UnsafeMutablePointer<Float>, reciprocalRMS: UnsafeMutablePointer<Float>?,
                                    rows: Int, columns: Int, epsilon: Float) {
    for row in 0..<rows {
        var sum = 0.0
        for j in 0..<columns { sum += Double(x[row * columns + j]) * Double(x[row * columns + j]) }
        let r = 1 / (sum / Double(columns) + Double(epsilon)).squareRoot()
        reciprocalRMS?[row] = Float(r)
        for j in 0..<columns { y[row * columns + j] = Float(Double(x[row * columns + j]) * r * Double(weight[j])) }
    }
}

/// The backward pass computed naively in Double (accumulating, like the fast one), for tests of the fast path.
public func referenceRMSNormBackward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                     dX: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
                                     rows: Int, columns: Int, epsilon: Float) {
    var dWeightSum = [Double](repeating: 0, count: columns)
    for row in 0..<rows {
        let base = row * columns
        var sum = 0.0
        for j in 0..<columns { sum += Double(x[base + j]) * Double(x[base + j]) }
        let r = 1 / (sum / Double(columns) + Double(epsilon)).squareRoot()
        var dot = 0.0
        for j in 0..<columns { dot += Double(dY[base + j]) * Double(weight[j]) * Double(x[base + j]) }
        for i in 0..<columns {
            let dx = r * Double(dY[base + i]) * Double(weight[i]) - r * r * r / Double(columns) * Double(x[base + i]) * dot
            dX[base + i] = Float(Double(dX[base + i]) + dx)
            dWeightSum[i] += Double(dY[base + i]) * Double(x[base + i]) * r
        }
    }
    for j in 0..<columns { dWeight[j] = Float(Double(dWeight[j]) + dWeightSum[j]) }
}

// MARK: - Vector helpers

/// 1 / sqrt(mean(x²) + eps) of one row; forward and backward share it, so a saved value equals a recomputed one bit for bit.
@inline(__always)
private func rowReciprocalRMS(_ x: UnsafePointer<Float>, columns: Int, epsilon: Float) -> Float {
    1 / (sumOfSquares(x, count: columns) / Float(columns) + epsilon).squareRoot()
}

/// Σ x_i² over `count` values, with two vector accumulators to hide the add latency.
@inline(__always)
private func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Float {
    var a = SIMD16<Float>(), b = SIMD16<Float>()
    var i = 0
    while i + 32 <= count {
        let u = VectorMath.load(x + i), v = VectorMath.load(x + i + 16)
        a.addProduct(u, u)
        b.addProduct(v, v)
        i += 32
    }
    if i + 16 <= count {
        let u = VectorMath.load(x + i)
        a.addProduct(u, u)
        i += 16
    }
    var sum = (a + b).sum()
    while i < count {
        sum += x[i] * x[i]
        i += 1
    }
    return sum
}
