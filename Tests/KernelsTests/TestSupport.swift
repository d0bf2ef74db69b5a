import Foundation
@testable import Kernels

// What several kernel test files share: seeded test data and the numerical
// yardsticks (central differences, relative error) they hold kernels to.

// MARK: - Test data

/// SplitMix64 (Steele, Lea & Flood, 2014): seeded test data that does not depend on Kernels' own generator.
struct TestRandom: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform between `lower` and `upper`, on a grid of 2⁻²⁴ of the range.
    mutating func uniform(_ lower: Float, _ upper: Float) -> Float {
        lower + (upper - lower) * Float(next() >> 40) / Float(1 << 24)
    }

    /// An index in 0..<bound.
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// `count` uniform values.
    mutating func values(_ count: Int, _ lower: Float = -2, _ upper: Float = 2) -> [Float] {
        (0..<count).map { _ in uniform(lower, upper) }
    }

    /// Overwrites every value of `t` with a uniform one.
    mutating func fill(_ t: Tensor, _ lower: Float = -2, _ upper: Float = 2) {
        for i in 0..<t.count { t.pointer[i] = uniform(lower, upper) }
    }

    /// A new tensor of `shape` with uniform values.
    mutating func tensor(_ shape: [Int], _ lower: Float = -2, _ upper: Float = 2) -> Tensor {
        let t = Tensor(zeros: shape)
        fill(t, lower, upper)
        return t
    }
}

// MARK: - Yardsticks

/// df/dx by central differences in Double; the step scales with |x| so it stays well above rounding.
func centralDifference(at x: Double, step: Double = 1e-4, _ f: (Double) -> Double) -> Double {
    let h = step * max(1, abs(x))
    return (f(x + h) - f(x - h)) / (2 * h)
}

/// ∂f/∂x[k] by central differences in Double.
func centralDifference(of f: ([Double]) -> Double, at x: [Double], index k: Int, step: Double = 1e-5) -> Double {
    centralDifference(at: x[k], step: step) { value in
        var moved = x
        moved[k] = value
        return f(moved)
    }
}

/// |got − want| relative to max(|want|, floor).
func relativeError(_ got: Float, _ want: Double, floor: Double = 1) -> Double {
    abs(Double(got) - want) / max(abs(want), floor)
}
