import Foundation
import Testing
@testable import Kernels

/// Rotary embedding against a Double rotation written here, in both pair layouts.
@Suite struct RotaryEmbeddingTests {
    /// Shapes [T, H, D]: D/2 below, across and well past the 16-wide vectors,
    /// and one of 64 × 512 values, enough to be split across the pool.
    static let shapes: [(tokens: Int, heads: Int, headDimension: Int)] = [(1, 1, 2), (3, 2, 6), (5, 3, 34), (7, 1, 128), (64, 8, 64)]
    static let theta = 10_000.0

    // MARK: - A naive Double rotation, independent of the kernel's source

    /// Rotates each pair of `x` [T, H, D] by `sign` × position × theta^(−2i/D), in Double.
    static func naiveRotate(_ x: [Double], tokens: Int, heads: Int, headDimension: Int, positions: [Int],
                            layout: RotaryLayout, sign: Double = 1) -> [Double] {
        var y = x
        let half = headDimension / 2
        for t in 0..<tokens {
            for h in 0..<heads {
                let base = (t * heads + h) * headDimension
                for i in 0..<half {
                    let angle = sign * Double(positions[t]) * pow(theta, -2 * Double(i) / Double(headDimension))
                    let (p, q) = layout == .adjacent ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + i + half)
                    y[p] = x[p] * cos(angle) - x[q] * sin(angle)
                    y[q] = x[p] * sin(angle) + x[q] * cos(angle)
                }
            }
        }
        return y
    }

    /// The bound on one rotated value: cos and sin are rounded to Float, then two
    /// products and a sum, each within half an ulp, so 2⁻²² · (|a| + |b|) for its pair.
    static func pairTolerances(_ x: [Float], tokens: Int, heads: Int, headDimension: Int, layout: RotaryLayout) -> [Double] {
        var tolerance = [Double](repeating: 0, count: x.count)
        let half = headDimension / 2
        for row in 0..<tokens * heads {
            let base = row * headDimension
            for i in 0..<half {
                let (p, q) = layout == .adjacent ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + i + half)
                let bound = 0x1p-22 * Double(abs(x[p]) + abs(x[q])) + 1e-30
                tolerance[p] = bound
                tolerance[q] = bound
            }
        }
        return tolerance
    }

    static func randomValues(_ count: Int, seed: UInt64) -> [Float] {
        var generator = TestRandom(seed: seed)
        return generator.values(count, -1, 1)
    }

    // MARK: - Table

    @Test func standardInverseFrequenciesAreThetaToTheMinusTwoIOverD() {
        let frequencies = RotaryTable.standardInverseFrequencies(headDimension: 8, theta: 10_000)
        let expected = [1, 0.1, 0.01, 0.001]
        #expect(frequencies.count == 4)
        for (value, target) in zip(frequencies, expected) { #expect(abs(value - target) <= 1e-15 * target) }
        let llama3 = RotaryTable.standardInverseFrequencies(headDimension: 128, theta: 500_000)
        #expect(abs(llama3[63] - pow(500_000, -126.0 / 128)) <= 1e-18)
    }

    @Test func tableAnglesAreComputedInDoubleSoFarPositionsStayExact() {
        // Near position 131071 a Float angle p·f would be off by up to ~10⁻² rad;
        // the table must hold cos/sin of the Double angle, rounded once.
        let table = RotaryTable(headDimension: 8, theta: Self.theta, positionCount: 131_072)
        #expect(table.rotaryDimension == 8 && table.positionCount == 131_072)
        for position in [0, 1, 4097, 100_003, 131_071] {
            for pair in 0..<4 {
                let angle = Double(position) * pow(Self.theta, -2 * Double(pair) / 8)
                #expect(table.cosine(position: position, pair: pair) == Float(cos(angle)))
                #expect(table.sine(position: position, pair: pair) == Float(sin(angle)))
            }
        }
    }

    // MARK: - Forward

    @Test(arguments: shapes)
    func forwardMatchesADoubleRotationInBothLayouts(tokens: Int, heads: Int, headDimension: Int) {
        let table = RotaryTable(headDimension: headDimension, theta: Self.theta, positionCount: 4096)
        // Offsets as a KV cache has them, and a batch that restarts at 0.
        let positions = (0..<tokens).map { t in t % 2 == 0 ? 1000 + t : t / 2 }
        let input = Self.randomValues(tokens * heads * headDimension, seed: UInt64(tokens * 1000 + headDimension))
        for layout in RotaryLayout.allCases {
            let x = Tensor(shape: [tokens, heads, headDimension], values: input)
            rotaryEmbeddingForward(x, positions: positions, table: table, layout: layout)
            let expected = Self.naiveRotate(input.map(Double.init), tokens: tokens, heads: heads,
                                            headDimension: headDimension, positions: positions, layout: layout)
            let tolerance = Self.pairTolerances(input, tokens: tokens, heads: heads, headDimension: headDimension, layout: layout)
            var failures = 0
            for i in 0..<x.count where abs(Double(x.pointer[i]) - expected[i]) > tolerance[i] { failures += 1 }
            #expect(failures == 0, "\(layout): \(failures) values beyond 2⁻²²·(|a|+|b|)")
        }
    }

    @Test func int32AndIntPositionsAndABatchDimensionGiveTheSameResult() {
        let (batch, tokens, heads, headDimension) = (2, 5, 3, 20)
        let table = RotaryTable(headDimension: headDimension, theta: Self.theta, positionCount: 64)
        let positions = (0..<batch * tokens).map { 7 + $0 % tokens }
        let input = Self.randomValues(batch * tokens * heads * headDimension, seed: 11)
        for layout in RotaryLayout.allCases {
            let a = Tensor(shape: [batch * tokens, heads, headDimension], values: input)
            let b = Tensor(shape: [batch, tokens, heads, headDimension], values: input)
            rotaryEmbeddingForward(a, positions: positions, table: table, layout: layout)
            rotaryEmbeddingForward(b, positions: positions.map(Int32.init), table: table, layout: layout)
            #expect(a.scalars == b.scalars)
            #expect(a.scalars != input)
            // The second sequence of the batch repeats the first's positions, so its rotation of the same values matches.
            let c = Tensor(shape: [tokens, heads, headDimension], values: Array(input[(tokens * heads * headDimension)...]))
            rotaryEmbeddingForward(c, positions: Array(positions[..<tokens]), table: table, layout: layout)
            #expect(c.scalars == Array(a.scalars[(tokens * heads * headDimension)...]))
        }
    }

    @Test func fastPathAgreesWithTheReferenceKernelInTheSource() {
        let (tokens, heads, headDimension) = (4, 2, 40)
        let frequencies = RotaryTable.standardInverseFrequencies(headDimension: headDimension, theta: Self.theta)
        let table = RotaryTable(inverseFrequencies: frequencies, positionCount: 100)
        let positions = [3, 99, 0, 42]
        let input = Self.randomValues(tokens * heads * headDimension, seed: 12)
        for layout in RotaryLayout.allCases {
            var fast = input, reference = input
            rotaryEmbeddingForward(&fast, tokens: tokens, heads: heads, headDimension: headDimension,
                                   positions: positions, table: table, layout: layout)
            referenceRotaryEmbedding(&reference, tokens: tokens, heads: heads, headDimension: headDimension,
                                     positions: positions, inverseFrequencies: frequencies, layout: layout)
            let tolerance = Self.pairTolerances(input, tokens: tokens, heads: heads, headDimension: headDimension, layout: layout)
            for i in 0..<input.count { #expect(Double(abs(fast[i] - reference[i])) <= 2 * tolerance[i]) }
        }
    }

    @Test func partialRotaryLeavesTheDimensionsPastTheTableUnchanged() {
        // Six rotated dimensions (three frequencies) of a ten-dimensional head.
        let frequencies = RotaryTable.standardInverseFrequencies(headDimension: 6, theta: Self.theta)
        let table = RotaryTable(inverseFrequencies: frequencies, positionCount: 16)
        let input = Self.randomValues(2 * 3 * 10, seed: 13)
        for layout in RotaryLayout.allCases {
            let x = Tensor(shape: [2, 3, 10], values: input)
            rotaryEmbeddingForward(x, positions: [5, 9], table: table, layout: layout)
            var reference = input
            referenceRotaryEmbedding(&reference, tokens: 2, heads: 3, headDimension: 10, positions: [5, 9],
                                     inverseFrequencies: frequencies, layout: layout)
            for row in 0..<6 {
                for d in 0..<10 {
                    let i = row * 10 + d
                    if d >= 6 {
                        #expect(x.pointer[i] == input[i])
                    } else {
                        #expect(abs(x.pointer[i] - reference[i]) <= 1e-6)
                    }
                }
                // The rotated half really moved.
                #expect((0..<6).contains { x.pointer[row * 10 + $0] != input[row * 10 + $0] })
            }
        }
    }

    // MARK: - The two layouts

    /// llama.cpp's converter permutes q/k rows per head: reshape (2, D/2), swap
    /// the axes, so new[2j + h] = old[h · D/2 + j]; half-split pair (j, j + D/2)
    /// becomes adjacent pair (2j, 2j + 1).
    static func llamaCppPermute(_ x: [Float], headDimension: Int) -> [Float] {
        var y = x
        let half = headDimension / 2
        for head in 0..<x.count / headDimension {
            for j in 0..<half {
                for h in 0..<2 { y[head * headDimension + 2 * j + h] = x[head * headDimension + h * half + j] }
            }
        }
        return y
    }

    @Test func theLayoutsAreOneRotationUpToLlamaCppsHeadPermutation() {
        let (tokens, heads, headDimension) = (6, 4, 48)
        let table = RotaryTable(headDimension: headDimension, theta: Self.theta, positionCount: 512)
        let positions: [Int32] = [0, 1, 2, 300, 301, 511]
        let input = Self.randomValues(tokens * heads * headDimension, seed: 14)

        // Hugging Face order, half-split rope, then permuted into llama.cpp order…
        let halfSplit = Tensor(shape: [tokens, heads, headDimension], values: input)
        rotaryEmbeddingForward(halfSplit, positions: positions, table: table, layout: .halfSplit)
        let thenPermuted = Self.llamaCppPermute(halfSplit.scalars, headDimension: headDimension)
        // …equals permuting first (as the converter does to the weights) and rotating adjacent pairs.
        let adjacent = Tensor(shape: [tokens, heads, headDimension],
                              values: Self.llamaCppPermute(input, headDimension: headDimension))
        rotaryEmbeddingForward(adjacent, positions: positions, table: table, layout: .adjacent)
        let tolerance = Self.pairTolerances(input, tokens: tokens, heads: heads, headDimension: headDimension, layout: .halfSplit)
        let permutedTolerance = Self.llamaCppPermute(tolerance.map(Float.init), headDimension: headDimension)
        for i in 0..<input.count {
            #expect(Double(abs(adjacent.pointer[i] - thenPermuted[i])) <= 2 * Double(permutedTolerance[i]))
        }
        // Without the permutation the layouts disagree: the test can tell them apart.
        let unpermuted = Tensor(shape: [tokens, heads, headDimension], values: input)
        rotaryEmbeddingForward(unpermuted, positions: positions, table: table, layout: .adjacent)
        #expect(zip(unpermuted.scalars, halfSplit.scalars).contains { abs($0 - $1) > 1e-3 })
    }

    // MARK: - Backward

    @Test(arguments: shapes)
    func backwardUndoesForwardAtTheSamePositions(tokens: Int, heads: Int, headDimension: Int) {
        let table = RotaryTable(headDimension: headDimension, theta: Self.theta, positionCount: 8192)
        let positions = (0..<tokens).map { Int32(8191 - 97 * $0) }
        let input = Self.randomValues(tokens * heads * headDimension, seed: 15)
        for layout in RotaryLayout.allCases {
            let x = Tensor(shape: [tokens, heads, headDimension], values: input)
            rotaryEmbeddingForward(x, positions: positions, table: table, layout: layout)
            rotaryEmbeddingBackward(x, positions: positions, table: table, layout: layout)
            // Two rotations' rounding, plus cos² + sin² of Float cos and sin differing from 1 by ~2⁻²³.
            let tolerance = Self.pairTolerances(input, tokens: tokens, heads: heads, headDimension: headDimension, layout: layout)
            for i in 0..<input.count { #expect(Double(abs(x.pointer[i] - input[i])) <= 4 * tolerance[i]) }
        }
    }

    @Test func backwardMatchesCentralDifferencesOfTheDoubleForward() {
        // L = Σ g ⊙ rope(x); ∂L/∂x must be what backward makes of g.
        let (tokens, heads, headDimension) = (3, 2, 10)
        let positions = [4, 0, 250]
        let table = RotaryTable(headDimension: headDimension, theta: Self.theta, positionCount: 256)
        let x = Self.randomValues(tokens * heads * headDimension, seed: 16).map(Double.init)
        let g = Self.randomValues(tokens * heads * headDimension, seed: 17)
        for layout in RotaryLayout.allCases {
            let gradient = Tensor(shape: [tokens, heads, headDimension], values: g)
            rotaryEmbeddingBackward(gradient, positions: positions, table: table, layout: layout)
            func loss(_ x: [Double]) -> Double {
                zip(g, Self.naiveRotate(x, tokens: tokens, heads: heads, headDimension: headDimension,
                                        positions: positions, layout: layout)).reduce(0) { $0 + Double($1.0) * $1.1 }
            }
            let h = 1e-4
            for i in 0..<x.count {
                var plus = x, minus = x
                plus[i] += h
                minus[i] -= h
                let numeric = (loss(plus) - loss(minus)) / (2 * h)
                // L is linear in x, so the difference quotient is exact up to ~10⁻¹²; the
                // kernel's Float rotation of |g| ≤ 1 errs by at most 2⁻²¹.
                #expect(abs(Double(gradient.pointer[i]) - numeric) <= 0x1p-21, "\(layout) dx[\(i)]")
            }
        }
    }

    // MARK: - Relative positions

    @Test func queryKeyProductsDependOnlyOnThePositionDifference() {
        let headDimension = 64
        let table = RotaryTable(headDimension: headDimension, theta: Self.theta, positionCount: 5000)
        let q = Self.randomValues(headDimension, seed: 18), k = Self.randomValues(headDimension, seed: 19)
        let norms = q.reduce(0) { $0 + Double($1 * $1) }.squareRoot() * k.reduce(0) { $0 + Double($1 * $1) }.squareRoot()
        for layout in RotaryLayout.allCases {
            func score(_ m: Int, _ n: Int) -> Double {
                let qt = Tensor(shape: [1, 1, headDimension], values: q), kt = Tensor(shape: [1, 1, headDimension], values: k)
                rotaryEmbeddingForward(qt, positions: [m], table: table, layout: layout)
                rotaryEmbeddingForward(kt, positions: [n], table: table, layout: layout)
                return zip(qt.scalars, kt.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) }
            }
            // Each rotated value errs by ≤ 2⁻²²·(|a|+|b|), so a product by ≤ 2⁻²⁰·|q|·|k|
            // (Cauchy–Schwarz), and two products differ by at most 2⁻¹⁹·|q|·|k|.
            let tolerance = 0x1p-19 * norms
            for difference in [0, 3, 17, 1000] {
                let base = score(5 + difference, 5)
                for m in [1500, 2048, 4999] {
                    #expect(abs(score(m, m - difference) - base) <= tolerance, "\(layout) Δ=\(difference) at \(m)")
                }
            }
            // And the product does change with the difference.
            #expect(abs(score(10, 7) - score(10, 6)) > 1000 * tolerance)
        }
    }
}
