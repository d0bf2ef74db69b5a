#if canImport(Glibc)
import Glibc
#endif

/// Seeded, reproducible random numbers: xoshiro256** (Blackman & Vigna,
/// "Scrambled linear pseudorandom number generators", 2021; reference code at
/// https://prng.di.unimi.it/xoshiro256starstar.c), seeded through SplitMix64
/// as its authors recommend.
///
/// The integer stream, uniform floats and the fills built on them are
/// bit-identical on every machine. Normals go through `log` and `sqrt` in
/// Double: `sqrt` is exact by IEEE 754, and glibc's `log` errs below one Double
/// ulp, which the rounding to Float almost always hides.
public struct RandomGenerator: RandomNumberGenerator, Sendable, Equatable, Hashable, Codable {
    // The four state words; never all zero (the one fixed point of the transition).
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    // MARK: - Seeding and state

    /// A generator for `seed` on `stream` (stream 0 is the plain seed), each pair starting at an unrelated point of the 2²⁵⁶ − 1 cycle.
    public init(seed: UInt64, stream: UInt64 = 0) {
        // The finalizer maps 0 to 0, so stream 0 leaves the seed as it is and
        // matches every other "xoshiro256** seeded by SplitMix64(seed)"; other
        // streams move the seed by a bijective hash of the stream number. For
        // sequences that provably never overlap, use `split()`.
        var mixer = SplitMix64(state: seed ^ SplitMix64.finalizer(stream))
        s0 = mixer.next()
        s1 = mixer.next()
        s2 = mixer.next()
        s3 = mixer.next()
        // Four consecutive SplitMix64 outputs are never all zero (its output
        // function is a bijection of a counter), so the state is valid.
    }

    /// The generator whose state is `state` (four words, as `state` returns); nil for a wrong count or the all-zero state.
    public init?(state: [UInt64]) {
        guard state.count == 4, state.contains(where: { $0 != 0 }) else { return nil }
        s0 = state[0]
        s1 = state[1]
        s2 = state[2]
        s3 = state[3]
    }

    /// The four state words, for checkpoints: `RandomGenerator(state:)` resumes the sequence exactly here.
    public var state: [UInt64] { [s0, s1, s2, s3] }

    /// Decodes the four state words, rejecting a state the generator cannot have.
    public init(from decoder: any Decoder) throws {
        let words = try decoder.singleValueContainer().decode([UInt64].self)
        guard let generator = RandomGenerator(state: words) else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath,
                debugDescription: "random generator state must be 4 words, not all zero; got \(words)"))
        }
        self = generator
    }

    /// Encodes the four state words.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(state)
    }

    // MARK: - Integers

    /// The next 64 random bits.
    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = (s1 &* 5).rotatedLeft(7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3.rotatedLeft(45)
        return result
    }

    /// Advances the state by 2^128 calls to `next()`, in the time of 256 calls.
    public mutating func jump() {
        // The reference implementation's jump polynomial: the state after 2^128
        // steps is the XOR of the states at the steps whose bits are set.
        let polynomial: [UInt64] = [0x180E_C6D3_3CFD_0ABA, 0xD5A6_1266_F0C9_392C,
                                    0xA958_2618_E03F_C9AA, 0x39AB_DC45_29B1_661C]
        var t0: UInt64 = 0, t1: UInt64 = 0, t2: UInt64 = 0, t3: UInt64 = 0
        for word in polynomial {
            for bit in 0..<64 {
                if word & (1 << UInt64(bit)) != 0 {
                    t0 ^= s0
                    t1 ^= s1
                    t2 ^= s2
                    t3 ^= s3
                }
                _ = next()
            }
        }
        (s0, s1, s2, s3) = (t0, t1, t2, t3)
    }

    /// A generator for the next 2^128 outputs of this one, which itself jumps past them: the two never overlap.
    public mutating func split() -> RandomGenerator {
        let child = self
        jump()
        return child
    }

    // MARK: - Floating point

    /// A uniform Float in [0, 1): one of the 2^24 multiples of 2^-24.
    @inline(__always)
    public mutating func nextFloat() -> Float {
        Float(next() >> 40) * 0x1p-24
    }

    /// A uniform Float in [`lower`, `upper`).
    @inline(__always)
    public mutating func nextFloat(in lower: Float, _ upper: Float) -> Float {
        precondition(lower < upper && (upper - lower).isFinite, "empty or unbounded range [\(lower), \(upper))")
        let value = lower + (upper - lower) * nextFloat()
        // Rounding of the affine map can land on `upper` itself; keep the interval half-open.
        return value < upper ? value : upper.nextDown
    }

    /// A uniform Double in [0, 1): one of the 2^53 multiples of 2^-53.
    @inline(__always)
    public mutating func nextDouble() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// Two independent standard normals (Marsaglia's polar method, in Double).
    public mutating func nextNormalPair() -> (Float, Float) {
        while true {
            let u = 2 * nextDouble() - 1
            let v = 2 * nextDouble() - 1
            let s = u * u + v * v
            // Reject points outside the unit disc, and the centre where log(s)/s is undefined.
            if s >= 1 || s == 0 { continue }
            let factor = (-2 * log(s) / s).squareRoot()
            return (Float(u * factor), Float(v * factor))
        }
    }

    /// One standard normal (mean 0, variance 1); the pair's second value is dropped so the state stays four words.
    public mutating func nextNormal() -> Float {
        nextNormalPair().0
    }

    // MARK: - Filling tensors

    /// Fills `tensor` with uniform values in [`lower`, `upper`), row-major, serially so the result is thread-count independent.
    public mutating func fillUniform(_ tensor: Tensor, in lower: Float, _ upper: Float) {
        let p = tensor.pointer
        for i in 0..<tensor.count { p[i] = nextFloat(in: lower, upper) }
    }

    /// Fills `tensor` with normal values of mean `mean` and standard deviation `standardDeviation`.
    public mutating func fillNormal(_ tensor: Tensor, mean: Float = 0, standardDeviation: Float = 1) {
        let p = tensor.pointer, count = tensor.count
        var i = 0
        while i < count {
            let (a, b) = nextNormalPair()
            p[i] = mean + standardDeviation * a
            if i + 1 < count { p[i + 1] = mean + standardDeviation * b }
            i += 2
        }
    }

    /// The bound of PyTorch's `nn.init.kaiming_uniform_(w, a:)` (mode fan_in, leaky_relu) for a weight of `shape` [out, in, …].
    public static func kaimingUniformBound(shape: [Int], a: Double) -> Float {
        precondition(shape.count >= 2, "Kaiming initialisation needs a weight of rank 2 or more, not \(shape)")
        // PyTorch's fan_in: input features times the receptive field (the dimensions after the second).
        let fanIn = shape.dropFirst().reduce(1, *)
        precondition(fanIn > 0, "Kaiming initialisation of an empty weight \(shape)")
        let gain = (2 / (1 + a * a)).squareRoot()
        return Float(gain * (3 / Double(fanIn)).squareRoot())
    }

    /// Fills a weight [out, in] as PyTorch's `kaiming_uniform_(w, a:)` does: uniform in [−bound, bound), bound = √(2/(1+a²)) · √(3/in).
    public mutating func fillKaimingUniform(_ tensor: Tensor, a: Double = 0) {
        let bound = RandomGenerator.kaimingUniformBound(shape: tensor.shape, a: a)
        fillUniform(tensor, in: -bound, bound)
    }
}

// MARK: - SplitMix64

/// SplitMix64 (Steele, Lea & Flood, 2014), the seeding generator xoshiro's authors recommend.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The counter; each output is a bijective mix of it.
    public var state: UInt64

    /// A generator whose counter starts at `state`.
    public init(state: UInt64) { self.state = state }

    /// The next 64 bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.finalizer(state)
    }

    /// SplitMix64's output function: a bijection of UInt64 that maps 0 to 0.
    public static func finalizer(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension UInt64 {
    @inline(__always)
    fileprivate func rotatedLeft(_ k: UInt64) -> UInt64 { (self << k) | (self >> (64 - k)) }
}
