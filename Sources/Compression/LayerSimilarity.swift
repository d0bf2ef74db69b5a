#if canImport(Glibc)
import Glibc
#endif

/// Layer importance from representation similarity (shared/docs/LOSA.md, "The dynamic loop", step 3):
/// linear CKA (Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited")
/// between the Gram matrices of the layers' input features, each layer's redundancy as its summed
/// similarity to the others, and importance exp(−β·redundancy).
///
/// Shapes: n samples; K, L [n, n] Gram matrices; H = I − 𝟙𝟙ᵀ/n the centring matrix; L layers.
public enum LayerSimilarity {
    /// Why a similarity cannot be computed.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// Gram matrices of different sample counts were compared.
        case sampleCountMismatch(layer: Int, samples: Int, expected: Int)
        /// A similarity came out NaN or infinite (non-finite features reached a Gram matrix).
        case notFinite(layer: Int, other: Int, value: Double)

        public var description: String {
            switch self {
            case .sampleCountMismatch(let layer, let samples, let expected):
                return "layer similarity: the Gram matrix of layer \(layer) has \(samples) samples, the others \(expected); compute every layer's on the same calibration samples"
            case .notFinite(let layer, let other, let value):
                return "layer similarity: CKA of layers \(layer) and \(other) is \(value); the features of one of them are not finite (a diverged model?)"
            }
        }
    }

    /// K̃ = H·K·H, [n, n] row-major: K̃_ij = K_ij − mean_i − mean_j + mean, with mean_i K's row means
    /// (equal to its column means, K being symmetric) and mean the grand mean.
    public static func centred(_ gram: GramMatrix) -> [Double] {
        let n = gram.sampleCount, k = gram.values
        var rowMeans = [Double](repeating: 0, count: n)
        for i in 0..<n {
            var sum = 0.0
            for j in 0..<n { sum += k[i * n + j] }
            rowMeans[i] = sum / Double(n)
        }
        let grandMean = rowMeans.reduce(0, +) / Double(n)
        var result = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n { result[i * n + j] = k[i * n + j] - rowMeans[i] - rowMeans[j] + grandMean }
        }
        return result
    }

    /// HSIC(K, L) = tr(K·H·L·H) / (n − 1)² (the biased estimator of Gretton et al. 2005); K̃ is
    /// symmetric, so the trace is Σ_ij K̃_ij·L̃_ij.
    public static func hsic(_ k: GramMatrix, _ l: GramMatrix) -> Double {
        precondition(k.sampleCount == l.sampleCount, "HSIC of Gram matrices of \(k.sampleCount) and \(l.sampleCount) samples")
        let n = Double(k.sampleCount)
        return dot(centred(k), centred(l)) / max(1, (n - 1) * (n - 1))
    }

    /// Linear CKA = HSIC(K, L) / √(HSIC(K, K)·HSIC(L, L)), in [0, 1] for Gram matrices; 0 when either
    /// layer's centred features are all equal (HSIC(K, K) = 0: no variation to be similar in).
    public static func linearCKA(_ k: GramMatrix, _ l: GramMatrix) -> Double {
        precondition(k.sampleCount == l.sampleCount, "CKA of Gram matrices of \(k.sampleCount) and \(l.sampleCount) samples")
        let kc = centred(k), lc = centred(l)
        return cka(dot(kc, lc), dot(kc, kc), dot(lc, lc))
    }

    /// CKA(i, j) of every pair of layers [L, L] (the diagonal 1, or 0 for a layer without variation);
    /// each K is centred once.
    public static func ckaMatrix(_ grams: [GramMatrix]) throws(Failure) -> [[Double]] {
        guard let n = grams.first?.sampleCount else { return [] }
        for (layer, gram) in grams.enumerated() where gram.sampleCount != n {
            throw .sampleCountMismatch(layer: layer, samples: gram.sampleCount, expected: n)
        }
        let centred = grams.map(centred)
        let selfHSIC = centred.map { dot($0, $0) }
        var result = Array(repeating: Array(repeating: 0.0, count: grams.count), count: grams.count)
        for i in grams.indices {
            for j in i..<grams.count {
                let value = i == j ? (selfHSIC[i] > 0 ? 1 : cka(selfHSIC[i], selfHSIC[i], selfHSIC[i]))
                                   : cka(dot(centred[i], centred[j]), selfHSIC[i], selfHSIC[j])
                guard value.isFinite else { throw .notFinite(layer: i, other: j, value: value) }
                result[i][j] = value
                result[j][i] = value
            }
        }
        return result
    }

    /// Redundancy u_l = Σ_{j≠l} CKA(l, j), normalised so Σ u_l = 1; uniform 1/L when every
    /// off-diagonal similarity is 0 (including L = 1), where no layer is more redundant than another.
    public static func redundancy(cka: [[Double]]) -> [Double] {
        let count = cka.count
        precondition(cka.allSatisfy { $0.count == count }, "redundancy: the CKA matrix is not square")
        guard count > 0 else { return [] }
        let sums = (0..<count).map { l in (0..<count).reduce(0.0) { $1 == l ? $0 : $0 + cka[l][$1] } }
        let total = sums.reduce(0, +)
        guard total > 0 else { return Array(repeating: 1 / Double(count), count: count) }
        return sums.map { $0 / total }
    }

    /// Importance imp_l = exp(−β·u_l): a layer much like the others matters less (LOSA.md: β = 1 for
    /// Wanda, 100 for SparseGPT; it scales but never reorders the importances).
    public static func importance(redundancy: [Double], beta: Double) -> [Double] {
        redundancy.map { exp(-beta * $0) }
    }

    /// Importance of every layer straight from their Gram matrices.
    public static func importance(grams: [GramMatrix], beta: Double) throws(Failure) -> [Double] {
        importance(redundancy: redundancy(cka: try ckaMatrix(grams)), beta: beta)
    }

    // MARK: - Helpers

    static func cka(_ cross: Double, _ selfK: Double, _ selfL: Double) -> Double {
        // Zero self-HSIC means constant centred features; a NaN anywhere stays NaN for the caller to see.
        if selfK.isNaN || selfL.isNaN || cross.isNaN { return .nan }
        guard selfK > 0, selfL > 0 else { return 0 }
        return cross / (selfK.squareRoot() * selfL.squareRoot())  // two roots: the product of two large HSICs could overflow
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double {
        var sum = 0.0
        for i in a.indices { sum += a[i] * b[i] }
        return sum
    }
}
