/// Row-wise softmax, y = e^(x − max x) / Σ e^(x − max x), and its causal-masked
/// form for attention scores, forward and backward.
///
/// Shapes: plain softmax x, y, dY, dX [N, V]. Causal softmax x, y, dY, dX
/// [G, T, K]: G independent score matrices (B·H), T query positions, K key
/// positions, where query i sees keys 0...(i + offset) and offset counts the
/// cached positions before the query block (so usually K = offset + T).
/// Subtracting the row maximum keeps every exponent ≤ 0, so any finite input
/// is safe. y may be x (in place); dX accumulates (+=), the caller zeroes it.

// MARK: - Row kernels (shared with CrossEntropy)

/// Rows per parallel chunk, so that a chunk holds about `ParallelGrain.transcendental` values.
@inline(__always)
func softmaxMinimumRows(columns: Int) -> Int {
    max(1, ParallelGrain.transcendental / max(columns, 1))
}

/// The largest of `count` values; −inf when there are none.
@inline(__always)
func rowMaximum(_ x: UnsafePointer<Float>, count: Int) -> Float {
    var maximum = -Float.infinity
    var i = 0
    if count >= 16 {
        var lanes = VectorMath.load(x)
        i = 16
        while i + 16 <= count {
            let v = VectorMath.load(x + i)
            lanes = lanes.replacing(with: v, where: v .> lanes)
            i += 16
        }
        maximum = lanes.max()
    }
    while i < count {
        if x[i] > maximum { maximum = x[i] }
        i += 1
    }
    return maximum
}

/// Σ e^(x − shift), writing each term into `out` when given (`out` may be x);
/// summed in Float vectors flushed to Double every 256 values.
@inline(__always)
func sumOfShiftedExponentials(_ x: UnsafePointer<Float>, shift: Float,
                              out: UnsafeMutablePointer<Float>?, count: Int) -> Double {
    let shiftVector = SIMD16<Float>(repeating: shift)
    var total = 0.0
    var i = 0
    while i + 16 <= count {
        var partial = SIMD16<Float>()
        let blockEnd = min(count, i + 256)
        while i + 16 <= blockEnd {
            let e = VectorMath.exp(VectorMath.load(x + i) - shiftVector)
            if let out { VectorMath.store(e, to: out + i) }
            partial += e
            i += 16
        }
        total += Double(partial.sum())
    }
    while i < count {
        let e = VectorMath.exp(x[i] - shift)
        out?[i] = e
        total += Double(e)
        i += 1
    }
    return total
}

/// x *= factor over `count` values.
@inline(__always)
func scaleRow(_ x: UnsafeMutablePointer<Float>, by factor: Float, count: Int) {
    let f = SIMD16<Float>(repeating: factor)
    var i = 0
    while i + 16 <= count {
        VectorMath.store(VectorMath.load(x + i) * f, to: x + i)
        i += 16
    }
    while i < count {
        x[i] = x[i] * factor
        i += 1
    }
}

/// y = softmax(x) over one row of `count` values; y may be x.
@inline(__always)
func softmaxRow(_ x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int) {
    let maximum = rowMaximum(x, count: count)
    guard maximum != -.infinity else {
        // Every entry is −inf (fully masked): no mass anywhere, rather than 0/0.
        y.update(repeating: 0, count: count)
        return
    }
    let sum = sumOfShiftedExponentials(x, shift: maximum, out: y, count: count)
    scaleRow(y, by: Float(1 / sum), count: count)
}

/// dX += y ⊙ (dY − Σ dY ⊙ y) over one row of `count` values.
@inline(__always)
func softmaxBackwardRow(dY: UnsafePointer<Float>, y: UnsafePointer<Float>,
                        dX: UnsafeMutablePointer<Float>, count: Int) {
    let dot = Float(serialDotProduct(dY, y, count: count))
    let dotVector = SIMD16<Float>(repeating: dot)
    var i = 0
    while i + 16 <= count {
        let g = VectorMath.load(y + i) * (VectorMath.load(dY + i) - dotVector)
        VectorMath.store(VectorMath.load(dX + i) + g, to: dX + i)
        i += 16
    }
    while i < count {
        dX[i] = dX[i] + y[i] * (dY[i] - dot)
        i += 1
    }
}

// MARK: - Softmax

/// y[n] = softmax(x[n]) for each row; y may be x.   x, y: [N, V]
public func softmaxForward(_ x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
    precondition(rows >= 0 && columns >= 0, "softmax: \(rows) rows of \(columns) columns")
    WorkerPool.shared.parallelFor(rows, minimumChunk: softmaxMinimumRows(columns: columns)) { range in
        for row in range {
            softmaxRow(x + row * columns, y: y + row * columns, count: columns)
        }
    }
}

/// Backward of y = softmax(x) per row: dX += y ⊙ (dY − Σ dY ⊙ y).   dY, y, dX: [N, V]
public func softmaxBackward(dY: UnsafePointer<Float>, y: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>,
                            rows: Int, columns: Int) {
    precondition(rows >= 0 && columns >= 0, "softmax backward: \(rows) rows of \(columns) columns")
    WorkerPool.shared.parallelFor(rows, minimumChunk: softmaxMinimumRows(columns: columns)) { range in
        for row in range {
            let start = row * columns
            softmaxBackwardRow(dY: dY + start, y: y + start, dX: dX + start, count: columns)
        }
    }
}

// MARK: - Causal softmax

/// Calls `body(matrix, query)` for every row of G score matrices, each parallel
/// item pairing query p with query T−1−p so that items carry equal causal work.
@inline(__always)
func forEachCausalRow(matrices: Int, queries: Int, keys: Int, _ body: (Int, Int) -> Void) {
    let pairs = (queries + 1) / 2
    let minimumItems = max(1, ParallelGrain.transcendental / max(1, 2 * keys))
    WorkerPool.shared.parallelFor(matrices * pairs, minimumChunk: minimumItems) { range in
        for item in range {
            let matrix = item / pairs, first = item % pairs
            let second = queries - 1 - first
            body(matrix, first)
            if second != first { body(matrix, second) }
        }
    }
}

/// Keys that query `query` may attend to: (i + offset − window + 1)...(i + offset), clipped to the row
/// (`window` nil: from key 0).
@inline(__always)
func visibleKeys(query: Int, offset: Int, keys: Int, window: Int?) -> Range<Int> {
    let last = min(keys, query + offset + 1)
    guard let window else { return 0..<last }
    return max(0, min(last, query + offset + 1 - window))..<last
}

/// y = softmax of each score row over its visible keys (i + offset − window + 1)...(i + offset), exactly 0
/// elsewhere; y may be x. `window` nil: every earlier key (plain causal).   x, y: [G, T, K]
public func causalSoftmaxForward(_ x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                 matrices: Int = 1, queries: Int, keys: Int, offset: Int, window: Int? = nil) {
    precondition(matrices >= 0 && queries >= 0 && keys >= 0 && offset >= 0 && (window ?? 1) >= 1,
                 "causal softmax: \(matrices) matrices of \(queries)×\(keys), offset \(offset), window \(window ?? 0)")
    forEachCausalRow(matrices: matrices, queries: queries, keys: keys) { matrix, query in
        let start = (matrix * queries + query) * keys
        let visible = visibleKeys(query: query, offset: offset, keys: keys, window: window)
        (y + start).update(repeating: 0, count: visible.lowerBound)
        softmaxRow(x + start + visible.lowerBound, y: y + start + visible.lowerBound, count: visible.count)
        (y + start + visible.upperBound).update(repeating: 0, count: keys - visible.upperBound)
    }
}

/// Backward of the causal softmax: dX += y ⊙ (dY − Σ dY ⊙ y) over the visible keys; masked entries get nothing.   dY, y, dX: [G, T, K]
public func causalSoftmaxBackward(dY: UnsafePointer<Float>, y: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>,
                                  matrices: Int = 1, queries: Int, keys: Int, offset: Int, window: Int? = nil) {
    precondition(matrices >= 0 && queries >= 0 && keys >= 0 && offset >= 0 && (window ?? 1) >= 1,
                 "causal softmax backward: \(matrices) matrices of \(queries)×\(keys), offset \(offset), window \(window ?? 0)")
    forEachCausalRow(matrices: matrices, queries: queries, keys: keys) { matrix, query in
        let start = (matrix * queries + query) * keys
        let visible = visibleKeys(query: query, offset: offset, keys: keys, window: window)
        let first = start + visible.lowerBound
        softmaxBackwardRow(dY: dY + first, y: y + first, dX: dX + first, count: visible.count)
    }
}

// MARK: - Tensors

/// Softmax of each row (last dimension) of `x` into `y` of the same shape.
public func softmax(_ x: Tensor, into y: Tensor) {
    requireSameShape("softmax", x, y)
    softmaxForward(x.pointer, y: y.pointer, rows: x.rowCount, columns: x.rowLength)
}

/// Softmax of each row (last dimension) as a new tensor.
public func softmax(_ x: Tensor) -> Tensor {
    let y = Tensor(zeros: x.shape)
    softmax(x, into: y)
    return y
}

/// Backward of y = softmax(x) per row: dX += y ⊙ (dY − Σ dY ⊙ y).
public func softmaxBackward(_ dY: Tensor, y: Tensor, dX: Tensor) {
    requireSameShape("softmaxBackward", dY, y)
    requireSameShape("softmaxBackward", dY, dX)
    softmaxBackward(dY: dY.pointer, y: y.pointer, dX: dX.pointer, rows: y.rowCount, columns: y.rowLength)
}

/// The (matrices, queries, keys) reading of scores [..., T, K]: leading dimensions are independent matrices.
func causalShape(_ scores: Tensor) -> (matrices: Int, queries: Int, keys: Int) {
    precondition(scores.rank >= 2, "causal softmax: scores \(scores.shape) need [..., queries, keys]")
    let queries = scores.shape[scores.rank - 2], keys = scores.shape[scores.rank - 1]
    let perMatrix = queries * keys
    return (perMatrix == 0 ? 0 : scores.count / perMatrix, queries, keys)
}

/// Causal softmax of scores [..., T, K] into `y` of the same shape; query i sees keys 0...(i + offset).
public func causalSoftmax(_ x: Tensor, offset: Int = 0, into y: Tensor) {
    requireSameShape("causalSoftmax", x, y)
    let (matrices, queries, keys) = causalShape(x)
    causalSoftmaxForward(x.pointer, y: y.pointer, matrices: matrices, queries: queries, keys: keys, offset: offset)
}

/// Causal softmax of scores [..., T, K] as a new tensor.
public func causalSoftmax(_ x: Tensor, offset: Int = 0) -> Tensor {
    let y = Tensor(zeros: x.shape)
    causalSoftmax(x, offset: offset, into: y)
    return y
}

/// Backward of the causal softmax of scores [..., T, K]: dX += y ⊙ (dY − Σ dY ⊙ y) over visible keys.
public func causalSoftmaxBackward(_ dY: Tensor, y: Tensor, offset: Int = 0, dX: Tensor) {
    requireSameShape("causalSoftmaxBackward", dY, y)
    requireSameShape("causalSoftmaxBackward", dY, dX)
    let (matrices, queries, keys) = causalShape(y)
    causalSoftmaxBackward(dY: dY.pointer, y: y.pointer, dX: dX.pointer,
                          matrices: matrices, queries: queries, keys: keys, offset: offset)
}
