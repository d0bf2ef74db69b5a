import Foundation
import Kernels
import Testing
@testable import Compression

@Suite struct LayerSimilarityTests {
    /// Features [n, d] with standard normal values plus a per-column offset.
    static func features(_ n: Int, _ d: Int, seed: UInt64, offset: Double = 0) -> Tensor {
        var random = MathTestRandom(seed: seed)
        return Tensor(shape: [n, d], values: (0..<(n * d)).map { _ in Float(random.normal() + offset) })
    }

    static func gram(_ x: Tensor) -> GramMatrix {
        var gram = GramMatrix(sampleCount: x.shape[0])
        gram.accumulate(x)
        return gram
    }

    static func maxRelativeDifference(_ a: [Double], _ b: [Double]) -> Double {
        let scale = max(a.map(abs).max() ?? 0, 1e-300)
        return zip(a, b).map { abs($0 - $1) }.max()! / scale
    }

    // MARK: - Gram matrices

    /// Fast path (dgemm on Double copies) against one Double dot product per entry. Measured: 2e-15
    /// relative to the largest entry (the summation orders differ); K exactly symmetric.
    @Test func gramMatrixMatchesTheDefinitionWholeByColumnChunksAndByBatches() throws {
        let n = 9, d = 301
        let x = Self.features(n, d, seed: 1, offset: 3)
        let reference = GramMatrix.reference(features: x)
        let whole = Self.gram(x)
        #expect(Self.maxRelativeDifference(whole.values, reference.values) < 1e-14)
        for i in 0..<n { for j in 0..<n { #expect(whole[i, j] == whole[j, i]) } }

        // Chunks of the Double conversion smaller than d, and an uneven last chunk.
        let chunked = x.withUnsafeBufferPointer {
            GramMatrix.product($0.baseAddress!, rows: n, $0.baseAddress!, rows: n, features: d, sameOperand: true, chunkColumns: 64)
        }
        #expect(Self.maxRelativeDifference(chunked, reference.values) < 1e-14)

        // Batches of samples 0..<4, 4..<5, 5..<9: diagonal and off-diagonal blocks.
        let batches = [x.slice(0..<4), x.slice(4..<5), x.slice(5..<9)]
        #expect(Self.maxRelativeDifference(GramMatrix(batches: batches).values, reference.values) < 1e-14)

        // Column chunks of all samples (e.g. tokens [0, 2) then [2, 7) of [n, T = 7, C = 43]), added up.
        let tokens = x.reshaped([n, 7, 43])
        var byTokens = GramMatrix(sampleCount: n)
        for range in [0..<2, 2..<7] {
            let part = Tensor(zeros: [n, range.count * 43])
            for i in 0..<n {
                (part.pointer + i * range.count * 43).update(from: tokens[i].pointer + range.lowerBound * 43, count: range.count * 43)
            }
            byTokens.accumulate(part)
        }
        #expect(Self.maxRelativeDifference(byTokens.values, reference.values) < 1e-14)
    }

    // MARK: - Against numpy

    /// numpy (float64, H·K·H as matrices) on the same float32 features: Gram, HSIC, CKA,
    /// redundancy and importance agree to 1e-12 (measured: Gram 3e-16 relative, CKA 7e-15 absolute).
    @Test func similarityMatchesNumpy() throws {
        let fixture = try MathFixtures.document("layer-similarity.json")
        let n = try #require(fixture["samples"] as? Int), t = try #require(fixture["tokens"] as? Int)
        let c = try #require(fixture["hidden"] as? Int), layers = try #require(fixture["layers"] as? Int)
        let features = try #require(fixture["features"] as? [Any]).map { try MathFixtures.floats($0) }
        let grams = features.map { Self.gram(Tensor(shape: [n, t, c], values: $0)) }
        let expectedGrams = try #require(fixture["gram"] as? [Any]).map { try MathFixtures.doubles($0) }
        for l in 0..<layers { #expect(Self.maxRelativeDifference(grams[l].values, expectedGrams[l]) < 1e-12, "Gram of layer \(l)") }

        let hsic = try #require(fixture["hsic"] as? [Any]).map { try MathFixtures.doubles($0) }
        let cka = try #require(fixture["cka"] as? [Any]).map { try MathFixtures.doubles($0) }
        let matrix = try LayerSimilarity.ckaMatrix(grams)
        for i in 0..<layers {
            for j in 0..<layers {
                #expect(abs(LayerSimilarity.hsic(grams[i], grams[j]) - hsic[i][j]) <= 1e-12 * abs(hsic[i][j]), "HSIC(\(i), \(j))")
                #expect(abs(LayerSimilarity.linearCKA(grams[i], grams[j]) - cka[i][j]) < 1e-12, "CKA(\(i), \(j))")
                #expect(abs(matrix[i][j] - cka[i][j]) < 1e-12, "CKA matrix (\(i), \(j))")
            }
        }
        let redundancy = LayerSimilarity.redundancy(cka: matrix)
        #expect(zip(redundancy, try MathFixtures.doubles(fixture["redundancy"])).allSatisfy { abs($0 - $1) < 1e-12 })
        #expect(abs(redundancy.reduce(0, +) - 1) < 1e-15)
        for (beta, key) in [(1.0, "importance_beta_1"), (100.0, "importance_beta_100")] {
            let importance = try LayerSimilarity.importance(grams: grams, beta: beta)
            let expected = try MathFixtures.doubles(fixture[key])
            #expect(zip(importance, expected).allSatisfy { abs($0 - $1) <= 1e-12 * $1 }, "importance at β = \(beta)")
        }
    }

    // MARK: - Invariances

    /// A random orthogonal Q [d, d] from the Householder QR of a Gaussian matrix (Q = H_1 ⋯ H_d applied to I).
    static func orthogonal(_ d: Int, seed: UInt64) -> [Double] {
        var random = MathTestRandom(seed: seed)
        var a = (0..<(d * d)).map { _ in random.normal() }
        var q = (0..<(d * d)).map { $0 / d == $0 % d ? 1.0 : 0.0 }
        for k in 0..<d {
            // v = x − ‖x‖e₁ on column k below the diagonal; reflect A's remaining columns and accumulate Q = Q·H.
            var v = [Double](repeating: 0, count: d)
            for i in k..<d { v[i] = a[i * d + k] }
            let norm = v[k...].reduce(0) { $0 + $1 * $1 }.squareRoot()
            v[k] += v[k] >= 0 ? norm : -norm
            let vv = v.reduce(0) { $0 + $1 * $1 }
            guard vv > 0 else { continue }
            for j in 0..<d {
                var dotA = 0.0
                for i in k..<d { dotA += v[i] * a[i * d + j] }
                for i in k..<d { a[i * d + j] -= 2 * v[i] * dotA / vv }
            }
            for i in 0..<d {
                var dotQ = 0.0
                for r in k..<d { dotQ += q[i * d + r] * v[r] }
                for r in k..<d { q[i * d + r] -= 2 * dotQ * v[r] / vv }
            }
        }
        return q
    }

    /// CKA is invariant to X → X·Q (Q orthogonal) and to X → c·X. Measured: |ΔCKA| ≲ 1e-7 (the
    /// rotated features are rounded to Float), and Q is orthogonal to 1e-14.
    @Test func ckaIsInvariantToOrthogonalTransformsAndIsotropicScaling() throws {
        let n = 10, d = 24
        let x = Self.features(n, d, seed: 3)
        let y = Self.features(n, d, seed: 4, offset: 0.5)
        // y correlated with x so the CKA is not near its small-sample floor.
        for i in 0..<(n * d) { y.pointer[i] += 1.5 * x.pointer[i] }
        let q = Self.orthogonal(d, seed: 5)
        var worstOrthogonality = 0.0
        for i in 0..<d {
            for j in 0..<d {
                let dot = (0..<d).reduce(0.0) { $0 + q[$1 * d + i] * q[$1 * d + j] }
                worstOrthogonality = max(worstOrthogonality, abs(dot - (i == j ? 1 : 0)))
            }
        }
        #expect(worstOrthogonality < 1e-12)
        let rotated = Tensor(zeros: [n, d]), scaled = Tensor(zeros: [n, d])
        for i in 0..<n {
            for j in 0..<d {
                rotated.pointer[i * d + j] = Float((0..<d).reduce(0.0) { $0 + Double(x.pointer[i * d + $1]) * q[$1 * d + j] })
                scaled.pointer[i * d + j] = 3.7 * x.pointer[i * d + j]
            }
        }
        let kx = Self.gram(x), ky = Self.gram(y)
        let base = LayerSimilarity.linearCKA(kx, ky)
        #expect(base > 0.5 && base < 0.99)
        #expect(abs(LayerSimilarity.linearCKA(Self.gram(rotated), ky) - base) < 1e-6)
        #expect(abs(LayerSimilarity.linearCKA(Self.gram(scaled), ky) - base) < 1e-6)
        #expect(abs(LayerSimilarity.linearCKA(kx, kx) - 1) < 1e-15)
        #expect(abs(LayerSimilarity.linearCKA(ky, ky) - 1) < 1e-15)
        #expect(LayerSimilarity.linearCKA(kx, ky) == LayerSimilarity.linearCKA(ky, kx))
    }

    /// Centring removes a common offset: features shifted by 1000 in every entry have the CKA of the
    /// unshifted ones. (x + 1000) − 1000 is exact in Float (Sterbenz), so only the Double arithmetic
    /// of K and its centring differs, with K ~1.6e7 around centred values ~16. Measured: 4e-16.
    @Test func centringRemovesAConstantOffset() {
        let y = Self.features(8, 16, seed: 7)
        let shifted = Tensor(shape: [8, 16], values: Self.features(8, 16, seed: 6).scalars.map { $0 + 1000 })
        let x = Tensor(shape: [8, 16], values: shifted.scalars.map { $0 - 1000 })
        let original = LayerSimilarity.linearCKA(Self.gram(x), Self.gram(y))
        #expect(abs(LayerSimilarity.linearCKA(Self.gram(shifted), Self.gram(y)) - original) < 1e-10)
    }

    // MARK: - Degenerate input

    @Test func constantFeaturesHaveNoSimilarityAndUniformRedundancyFollows() throws {
        let constant = Tensor(shape: [5, 6], repeating: 2)
        let random = Self.features(5, 6, seed: 8)
        let matrix = try LayerSimilarity.ckaMatrix([Self.gram(constant), Self.gram(random)])
        #expect(matrix == [[0, 0], [0, 1]])
        #expect(LayerSimilarity.redundancy(cka: matrix) == [0.5, 0.5])
        #expect(LayerSimilarity.redundancy(cka: [[1]]) == [1])
        let importance = LayerSimilarity.importance(redundancy: [0.2, 0.5, 0.3], beta: 100)
        #expect(importance[0] > importance[2] && importance[2] > importance[1])
    }

    @Test func nonFiniteFeaturesAndMismatchedSampleCountsAreReported() throws {
        let bad = Self.features(4, 3, seed: 9)
        bad.pointer[5] = .nan
        let good = Self.features(4, 3, seed: 10)
        #expect(throws: LayerSimilarity.Failure.self) { try LayerSimilarity.ckaMatrix([Self.gram(good), Self.gram(bad)]) }
        #expect(throws: LayerSimilarity.Failure.sampleCountMismatch(layer: 1, samples: 3, expected: 4)) {
            try LayerSimilarity.ckaMatrix([Self.gram(good), Self.gram(Self.features(3, 3, seed: 11))])
        }
    }
}
