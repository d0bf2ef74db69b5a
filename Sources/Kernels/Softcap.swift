/// Logit soft-capping (Gemma 2): x ← cap · tanh(x / cap), which keeps every value inside
/// (−cap, cap) and is the identity near 0. tanh(v) = 2σ(2v) − 1, so it reuses the vector sigmoid.
///
/// Shapes: x, y, dY, dX are [N], any tensor read flat. The backward reads the capped values:
/// d/dx = 1 − tanh² = 1 − (y / cap)².

/// x ← cap · tanh(x / cap), in place.   x: [N]
public func softcapForward(_ x: UnsafeMutablePointer<Float>, count: Int, cap: Float) {
    precondition(cap > 0, "softcap: cap \(cap) must be positive")
    let scale = 2 / cap
    WorkerPool.shared.parallelFor(count, minimumChunk: ParallelGrain.transcendental) { range in
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            let v = VectorMath.load(x + i)
            VectorMath.store(cap * (2 * VectorMath.sigmoid(scale * v) - 1), to: x + i)
            i += 16
        }
        while i < range.upperBound {
            x[i] = cap * (2 * VectorMath.sigmoid(scale * x[i]) - 1)
            i += 1
        }
    }
}

/// dX = dY · (1 − (y / cap)²), written (dX may be dY).   dY, y, dX: [N]
public func softcapBackward(dY: UnsafePointer<Float>, y: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>,
                            count: Int, cap: Float) {
    WorkerPool.shared.parallelFor(count, minimumChunk: ParallelGrain.streaming) { range in
        softcapBackward(dY: dY, y: y, dX: dX, range: range, cap: cap)
    }
}

/// `softcapBackward` over `range` on the calling thread (for callers already on a worker).
@inline(__always)
func softcapBackward(dY: UnsafePointer<Float>, y: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>,
                     range: Range<Int>, cap: Float) {
    let inverse = 1 / cap
    for i in range {
        let t = y[i] * inverse
        dX[i] = dY[i] * (1 - t * t)
    }
}
