#if canImport(Glibc)
import Glibc
#endif

/// Rotary position embedding (Su et al., "RoFormer: Enhanced Transformer with
/// Rotary Position Embedding", 2021): each pair (a, b) of a head's first R
/// dimensions is rotated by the angle position × inverseFrequency[i]:
///
///     a' = a · cos − b · sin
///     b' = a · sin + b · cos
///
/// Shapes: x, dX [T, H, D] (a batch flattens to T = B · tokens); positions [T];
/// the table holds cos and sin [P, R/2] for positions 0..<P, R = 2 · frequencies ≤ D.
/// Dimensions R..<D (partial rotary) pass through unchanged.

/// Which dimensions of a head form the rotated pairs.
public enum RotaryLayout: Sendable, Equatable, CaseIterable {
    /// Pairs (2i, 2i+1): ggml's "normal" rope, used for LLaMA as llama.cpp's converter stores its q/k weights in GGUF.
    case adjacent
    /// Pairs (i, i + R/2): Hugging Face's `rotate_half` (ggml's "neox" rope), used with Hugging Face checkpoints.
    case halfSplit
}

/// cos and sin of position × inverse frequency for positions 0..<`positionCount`, computed once per model.
public struct RotaryTable: Sendable {
    /// One inverse frequency per rotated pair (R/2 of them), in radians per position.
    public let inverseFrequencies: [Double]
    /// Positions the table covers: 0..<positionCount.
    public let positionCount: Int
    /// cos(p · f_i) at [p · R/2 + i].
    let cosines: [Float]
    /// sin(p · f_i) at [p · R/2 + i].
    let sines: [Float]

    /// Dimensions rotated per head (R): two per inverse frequency.
    public var rotaryDimension: Int { 2 * inverseFrequencies.count }

    /// A table for `inverseFrequencies` (standard, or rescaled as llama3 does) and positions 0..<`positionCount`.
    public init(inverseFrequencies: [Double], positionCount: Int) {
        precondition(!inverseFrequencies.isEmpty && positionCount > 0,
                     "rotary table: \(inverseFrequencies.count) frequencies, \(positionCount) positions")
        precondition(inverseFrequencies.allSatisfy(\.isFinite), "rotary table: non-finite inverse frequency")
        self.inverseFrequencies = inverseFrequencies
        self.positionCount = positionCount
        let half = inverseFrequencies.count
        let count = positionCount * half
        var cosines = [Float](repeating: 0, count: count)
        var sines = [Float](repeating: 0, count: count)
        // The angle p · f and its cos/sin in Double: in Float, p · f at p = 10⁵
        // would already be off by ~10⁻² rad.
        cosines.withUnsafeMutableBufferPointer { cosineBuffer in
            sines.withUnsafeMutableBufferPointer { sineBuffer in
                let cosineBase = cosineBuffer.baseAddress!, sineBase = sineBuffer.baseAddress!
                WorkerPool.shared.parallelFor(positionCount, minimumChunk: max(1, 4096 / half)) { range in
                    for position in range {
                        for i in 0..<half {
                            let angle = Double(position) * inverseFrequencies[i]
                            cosineBase[position * half + i] = Float(cos(angle))
                            sineBase[position * half + i] = Float(sin(angle))
                        }
                    }
                }
            }
        }
        self.cosines = cosines
        self.sines = sines
    }

    /// A table with the standard frequencies for head dimension `headDimension` and base `theta`.
    public init(headDimension: Int, theta: Double = 10_000, positionCount: Int) {
        self.init(inverseFrequencies: RotaryTable.standardInverseFrequencies(headDimension: headDimension, theta: theta),
                  positionCount: positionCount)
    }

    /// The original RoPE frequencies inv_freq[i] = theta^(−2i/D), i in 0..<D/2 (for partial rotary, D is the rotated dimension count).
    public static func standardInverseFrequencies(headDimension: Int, theta: Double) -> [Double] {
        precondition(headDimension > 0 && headDimension % 2 == 0, "rotary: head dimension \(headDimension) must be even")
        precondition(theta > 1, "rotary: theta \(theta) must be above 1")
        return (0..<headDimension / 2).map { i in pow(theta, -Double(2 * i) / Double(headDimension)) }
    }

    /// cos(position · inverseFrequencies[pair]) as stored.
    public func cosine(position: Int, pair: Int) -> Float { cosines[position * inverseFrequencies.count + pair] }

    /// sin(position · inverseFrequencies[pair]) as stored.
    public func sine(position: Int, pair: Int) -> Float { sines[position * inverseFrequencies.count + pair] }
}

// MARK: - Forward

/// Rotates q or k `x` [T, H, D] in place by each token's position: pair (a, b) → (a·cos − b·sin, a·sin + b·cos).
public func rotaryEmbeddingForward(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDimension: Int,
                                   positions: UnsafePointer<Int32>, table: RotaryTable, layout: RotaryLayout) {
    rotate(x, tokens: tokens, heads: heads, headDimension: headDimension, positions: positions,
           table: table, layout: layout, direction: 1)
}

/// Rotates `x` [T, H, D] in place by each token's position, with positions as Int.
public func rotaryEmbeddingForward(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDimension: Int,
                                   positions: UnsafePointer<Int>, table: RotaryTable, layout: RotaryLayout) {
    rotate(x, tokens: tokens, heads: heads, headDimension: headDimension, positions: positions,
           table: table, layout: layout, direction: 1)
}

// MARK: - Backward

/// Turns dY [T, H, D], the gradient at forward's output, into dX in place: the rotation is orthogonal, so dX = Rᵀ · dY, a rotation by −angle.
///
/// Forward per pair: (a', b') = (a·cos − b·sin, a·sin + b·cos), so
/// da = da'·cos + db'·sin and db = −da'·sin + db'·cos. This overwrites its
/// buffer rather than accumulating: rope has no parameters, and the caller
/// owns the gradient it converts.
public func rotaryEmbeddingBackward(_ gradient: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDimension: Int,
                                    positions: UnsafePointer<Int32>, table: RotaryTable, layout: RotaryLayout) {
    rotate(gradient, tokens: tokens, heads: heads, headDimension: headDimension, positions: positions,
           table: table, layout: layout, direction: -1)
}

/// The backward rotation (by −angle) in place, with positions as Int.
public func rotaryEmbeddingBackward(_ gradient: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDimension: Int,
                                    positions: UnsafePointer<Int>, table: RotaryTable, layout: RotaryLayout) {
    rotate(gradient, tokens: tokens, heads: heads, headDimension: headDimension, positions: positions,
           table: table, layout: layout, direction: -1)
}

/// The shared body: rotation by `direction` × angle (+1 forward, −1 backward).
private func rotate<Position: BinaryInteger>(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDimension: Int,
                                             positions: UnsafePointer<Position>, table: RotaryTable,
                                             layout: RotaryLayout, direction: Float) {
    let half = table.inverseFrequencies.count
    precondition(tokens >= 0 && heads > 0 && 2 * half <= headDimension,
                 "rotary: \(tokens) tokens × \(heads) heads × \(headDimension) dims with a table rotating \(2 * half)")
    // Checked here, on the caller, so that a bad position names itself instead of trapping on a worker.
    for t in 0..<tokens {
        precondition(positions[t] >= 0 && positions[t] < table.positionCount,
                     "rotary: token \(t) has position \(positions[t]), outside the table's 0..<\(table.positionCount)")
    }
    let rowLength = heads * headDimension
    table.cosines.withUnsafeBufferPointer { cosineBuffer in
        table.sines.withUnsafeBufferPointer { sineBuffer in
            let cosineBase = cosineBuffer.baseAddress!, sineBase = sineBuffer.baseAddress!
            WorkerPool.shared.parallelFor(tokens, minimumChunk: max(1, 16_384 / max(rowLength, 1))) { range in
                for t in range {
                    let position = Int(positions[t])
                    let c = cosineBase + position * half, s = sineBase + position * half
                    for h in 0..<heads {
                        let v = x + t * rowLength + h * headDimension
                        switch layout {
                        case .adjacent: rotateAdjacentPairs(v, half: half, cosines: c, sines: s, direction: direction)
                        case .halfSplit: rotateSplitHalves(v, half: half, cosines: c, sines: s, direction: direction)
                        }
                    }
                }
            }
        }
    }
}

/// Pairs (v[2i], v[2i+1]) for i in 0..<half.
@inline(__always)
private func rotateAdjacentPairs(_ v: UnsafeMutablePointer<Float>, half: Int, cosines c: UnsafePointer<Float>,
                                 sines s: UnsafePointer<Float>, direction: Float) {
    for i in 0..<half {
        let a = v[2 * i], b = v[2 * i + 1], sine = direction * s[i]
        v[2 * i] = a * c[i] - b * sine
        v[2 * i + 1] = a * sine + b * c[i]
    }
}

/// Pairs (v[i], v[i + half]) for i in 0..<half: two contiguous halves, so whole vectors at a time.
@inline(__always)
private func rotateSplitHalves(_ v: UnsafeMutablePointer<Float>, half: Int, cosines c: UnsafePointer<Float>,
                               sines s: UnsafePointer<Float>, direction: Float) {
    let w = v + half
    let directionVector = SIMD16<Float>(repeating: direction)
    var i = 0
    while i + 16 <= half {
        let a = UnsafeRawPointer(v + i).loadUnaligned(as: SIMD16<Float>.self)
        let b = UnsafeRawPointer(w + i).loadUnaligned(as: SIMD16<Float>.self)
        let cosine = UnsafeRawPointer(c + i).loadUnaligned(as: SIMD16<Float>.self)
        let sine = directionVector * UnsafeRawPointer(s + i).loadUnaligned(as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(v + i).storeBytes(of: a * cosine - b * sine, as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(w + i).storeBytes(of: a * sine + b * cosine, as: SIMD16<Float>.self)
        i += 16
    }
    while i < half {
        let a = v[i], b = w[i], sine = direction * s[i]
        v[i] = a * c[i] - b * sine
        w[i] = a * sine + b * c[i]
        i += 1
    }
}

// MARK: - Tensors

/// Rotates `x` [T, H, D] (or [B, T, H, D], positions then [B·T]) in place by `positions`.
public func rotaryEmbeddingForward(_ x: Tensor, positions: [Int32], table: RotaryTable, layout: RotaryLayout) {
    rotate(x, positions: positions, table: table, layout: layout, direction: 1)
}

/// Rotates `x` [T, H, D] in place by `positions` given as Int.
public func rotaryEmbeddingForward(_ x: Tensor, positions: [Int], table: RotaryTable, layout: RotaryLayout) {
    rotate(x, positions: positions, table: table, layout: layout, direction: 1)
}

/// Turns the gradient at forward's output, `gradient` [T, H, D], into the gradient at its input, in place.
public func rotaryEmbeddingBackward(_ gradient: Tensor, positions: [Int32], table: RotaryTable, layout: RotaryLayout) {
    rotate(gradient, positions: positions, table: table, layout: layout, direction: -1)
}

/// The backward rotation in place, with positions as Int.
public func rotaryEmbeddingBackward(_ gradient: Tensor, positions: [Int], table: RotaryTable, layout: RotaryLayout) {
    rotate(gradient, positions: positions, table: table, layout: layout, direction: -1)
}

/// The tensor form of the shared body: `x` [..., T, H, D] with one position per token.
private func rotate<Position: BinaryInteger>(_ x: Tensor, positions: [Position], table: RotaryTable,
                                             layout: RotaryLayout, direction: Float) {
    precondition(x.rank >= 3, "rotary: expected [T, H, D], got \(x.shape)")
    let heads = x.shape[x.rank - 2], headDimension = x.shape[x.rank - 1]
    let tokens = heads * headDimension == 0 ? 0 : x.count / (heads * headDimension)
    precondition(tokens == positions.count, "rotary: \(positions.count) positions for \(tokens) tokens of \(x.shape)")
    positions.withUnsafeBufferPointer {
        rotate(x.pointer, tokens: tokens, heads: heads, headDimension: headDimension, positions: $0.baseAddress!,
               table: table, layout: layout, direction: direction)
    }
}

// MARK: - Reference

/// The rotation computed naively in Double straight from the frequencies (no table), for tests of the fast path; `inverse` rotates by −angle.
public func referenceRotaryEmbedding(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDimension: Int,
                                     positions: [Int], inverseFrequencies: [Double], layout: RotaryLayout,
                                     inverse: Bool = false) {
    let half = inverseFrequencies.count
    for t in 0..<tokens {
        for h in 0..<heads {
            let v = x + (t * heads + h) * headDimension
            for i in 0..<half {
                let angle = (inverse ? -1 : 1) * Double(positions[t]) * inverseFrequencies[i]
                let (first, second) = layout == .adjacent ? (2 * i, 2 * i + 1) : (i, i + half)
                let a = Double(v[first]), b = Double(v[second])
                v[first] = Float(a * cos(angle) - b * sin(angle))
                v[second] = Float(a * sin(angle) + b * cos(angle))
            }
        }
    }
}
