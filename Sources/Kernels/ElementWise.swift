/// Element-wise arithmetic: sum, product and scaled accumulation (y += α·x),
/// each forward with its backward.
///
/// Shapes: every buffer is [N], any tensor read flat; all buffers of one call
/// have the same count. An output may be one of the inputs (each element is
/// read before it is written). Gradients accumulate (+=); the caller zeroes them.

// MARK: - Parallel grain

/// Smallest parallel chunks: waking the pool costs about 10 µs, so a chunk
/// must carry at least that much work, and smaller loops stay on the caller.
enum ParallelGrain {
    /// Elements per chunk for loops that only stream memory (an add: 0.1–0.25 ns each).
    static let streaming = 1 << 17
    /// Elements per chunk for loops that evaluate an exponential per element (0.6–1 ns each).
    static let transcendental = 1 << 14
}

// MARK: - add

/// out = a + b.   a, b, out: [N]
public func addForward(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                       out: UnsafeMutablePointer<Float>, count: Int) {
    WorkerPool.shared.parallelFor(count, minimumChunk: ParallelGrain.streaming) { range in
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            VectorMath.store(VectorMath.load(a + i) + VectorMath.load(b + i), to: out + i)
            i += 16
        }
        while i < range.upperBound {
            out[i] = a[i] + b[i]
            i += 1
        }
    }
}

/// Backward of out = a + b: dA += dOut, dB += dOut.   dOut, dA, dB: [N]
public func addBackward(dOut: UnsafePointer<Float>, dA: UnsafeMutablePointer<Float>?,
                        dB: UnsafeMutablePointer<Float>?, count: Int) {
    // One pass per gradient, so dA and dB may be the same buffer (out = x + x).
    if let dA { addForward(dA, dOut, out: dA, count: count) }
    if let dB { addForward(dB, dOut, out: dB, count: count) }
}

// MARK: - multiply

/// out = a ⊙ b.   a, b, out: [N]
public func multiplyForward(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                            out: UnsafeMutablePointer<Float>, count: Int) {
    WorkerPool.shared.parallelFor(count, minimumChunk: ParallelGrain.streaming) { range in
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            VectorMath.store(VectorMath.load(a + i) * VectorMath.load(b + i), to: out + i)
            i += 16
        }
        while i < range.upperBound {
            out[i] = a[i] * b[i]
            i += 1
        }
    }
}

/// Backward of out = a ⊙ b: dA += dOut ⊙ b, dB += dOut ⊙ a.   all: [N]
public func multiplyBackward(dOut: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                             dA: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?, count: Int) {
    // One pass per gradient, so dA and dB may be the same buffer (out = x ⊙ x).
    if let dA { multiplyAccumulate(dOut, b, into: dA, count: count) }
    if let dB { multiplyAccumulate(dOut, a, into: dB, count: count) }
}

/// acc += x ⊙ y.   x, y, acc: [N]
func multiplyAccumulate(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                        into acc: UnsafeMutablePointer<Float>, count: Int) {
    WorkerPool.shared.parallelFor(count, minimumChunk: ParallelGrain.streaming) { range in
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            let sum = VectorMath.load(acc + i) + VectorMath.load(x + i) * VectorMath.load(y + i)
            VectorMath.store(sum, to: acc + i)
            i += 16
        }
        while i < range.upperBound {
            acc[i] = acc[i] + x[i] * y[i]
            i += 1
        }
    }
}

// MARK: - scaled accumulate

/// y += alpha · x (BLAS axpy).   x, y: [N]
public func scaledAccumulateForward(_ x: UnsafePointer<Float>, alpha: Float,
                                    y: UnsafeMutablePointer<Float>, count: Int) {
    WorkerPool.shared.parallelFor(count, minimumChunk: ParallelGrain.streaming) { range in
        let a = SIMD16<Float>(repeating: alpha)
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            VectorMath.store(VectorMath.load(y + i) + a * VectorMath.load(x + i), to: y + i)
            i += 16
        }
        while i < range.upperBound {
            y[i] = y[i] + alpha * x[i]
            i += 1
        }
    }
}

/// Backward of y += alpha · x: dX += alpha · dY, and returns ∂L/∂alpha = Σ dY · x
/// (0 when `x` is nil); the earlier y's gradient is dY itself.   dY, x, dX: [N]
@discardableResult
public func scaledAccumulateBackward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>?, alpha: Float,
                                     dX: UnsafeMutablePointer<Float>?, count: Int) -> Float {
    if let dX { scaledAccumulateForward(dY, alpha: alpha, y: dX, count: count) }
    guard let x else { return 0 }
    return Float(dotProduct(dY, x, count: count))
}

// MARK: - Reductions

/// Σ a · b, summed serially in Float vectors and flushed to Double every 256 elements.   a, b: [N]
@inline(__always)
func serialDotProduct(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Double {
    var total = 0.0
    var i = 0
    while i + 16 <= count {
        // Each lane adds at most 16 products before the flush, which keeps Float rounding small.
        var partial = SIMD16<Float>()
        let blockEnd = min(count, i + 256)
        while i + 16 <= blockEnd {
            partial += VectorMath.load(a + i) * VectorMath.load(b + i)
            i += 16
        }
        total += Double(partial.sum())
    }
    while i < count {
        total += Double(a[i] * b[i])
        i += 1
    }
    return total
}

/// Σ a · b over the worker pool; the blocks are fixed, so the result does not depend on the thread count.   a, b: [N]
func dotProduct(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Double {
    let block = ParallelGrain.streaming
    let blockCount = (count + block - 1) / block
    guard blockCount > 1 else { return serialDotProduct(a, b, count: count) }
    return withUnsafeTemporaryAllocation(of: Double.self, capacity: blockCount) { partials in
        WorkerPool.shared.parallelFor(blockCount) { range in
            for index in range {
                let start = index * block
                partials[index] = serialDotProduct(a + start, b + start, count: min(block, count - start))
            }
        }
        var total = 0.0
        for index in 0..<blockCount { total += partials[index] }
        return total
    }
}

// MARK: - Tensors

@inline(__always)
func requireSameShape(_ operation: String, _ first: Tensor, _ second: Tensor) {
    precondition(first.shape == second.shape, "\(operation): shapes \(first.shape) and \(second.shape) differ")
}

/// out = a + b for tensors of one shape.
public func add(_ a: Tensor, _ b: Tensor, into out: Tensor) {
    requireSameShape("add", a, b)
    requireSameShape("add", a, out)
    addForward(a.pointer, b.pointer, out: out.pointer, count: a.count)
}

/// a + b as a new tensor.
public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
    let out = Tensor(zeros: a.shape)
    add(a, b, into: out)
    return out
}

/// Backward of out = a + b: dA += dOut, dB += dOut.
public func addBackward(_ dOut: Tensor, dA: Tensor?, dB: Tensor?) {
    if let dA { requireSameShape("addBackward", dOut, dA) }
    if let dB { requireSameShape("addBackward", dOut, dB) }
    addBackward(dOut: dOut.pointer, dA: dA?.pointer, dB: dB?.pointer, count: dOut.count)
}

/// out = a ⊙ b for tensors of one shape.
public func multiply(_ a: Tensor, _ b: Tensor, into out: Tensor) {
    requireSameShape("multiply", a, b)
    requireSameShape("multiply", a, out)
    multiplyForward(a.pointer, b.pointer, out: out.pointer, count: a.count)
}

/// a ⊙ b as a new tensor.
public func multiply(_ a: Tensor, _ b: Tensor) -> Tensor {
    let out = Tensor(zeros: a.shape)
    multiply(a, b, into: out)
    return out
}

/// Backward of out = a ⊙ b: dA += dOut ⊙ b, dB += dOut ⊙ a.
public func multiplyBackward(_ dOut: Tensor, a: Tensor, b: Tensor, dA: Tensor?, dB: Tensor?) {
    requireSameShape("multiplyBackward", dOut, a)
    requireSameShape("multiplyBackward", dOut, b)
    if let dA { requireSameShape("multiplyBackward", dOut, dA) }
    if let dB { requireSameShape("multiplyBackward", dOut, dB) }
    multiplyBackward(dOut: dOut.pointer, a: a.pointer, b: b.pointer,
                     dA: dA?.pointer, dB: dB?.pointer, count: dOut.count)
}

/// y += alpha · x for tensors of one shape.
public func scaledAccumulate(_ x: Tensor, alpha: Float, into y: Tensor) {
    requireSameShape("scaledAccumulate", x, y)
    scaledAccumulateForward(x.pointer, alpha: alpha, y: y.pointer, count: x.count)
}

/// Backward of y += alpha · x: dX += alpha · dY; returns Σ dY · x (0 when `x` is nil).
@discardableResult
public func scaledAccumulateBackward(_ dY: Tensor, x: Tensor?, alpha: Float, dX: Tensor?) -> Float {
    if let x { requireSameShape("scaledAccumulateBackward", dY, x) }
    if let dX { requireSameShape("scaledAccumulateBackward", dY, dX) }
    return scaledAccumulateBackward(dY: dY.pointer, x: x.map { UnsafePointer($0.pointer) },
                                    alpha: alpha, dX: dX?.pointer, count: dY.count)
}
