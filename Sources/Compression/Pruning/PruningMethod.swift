import Kernels

/// How the weights to zero are chosen (shared/docs/LOSA.md, step 4).
public enum PruningMethod: String, Sendable, CaseIterable, CustomStringConvertible {
    /// |W_ij| alone: the baseline, needs no calibration data.
    case magnitude
    /// |W_ij| · ‖X_j‖₂ per output row (Sun et al. 2023); needs input sums of squares.
    case wanda
    /// Optimal-brain-surgeon pruning with weight updates (Frantar & Alistarh 2023); needs the Hessian.
    case sparseGPT = "sparsegpt"

    /// Parses "magnitude", "wanda" or "sparsegpt" (any case).
    public init(parsing text: String) throws(PruningError) {
        guard let method = PruningMethod(rawValue: text.lowercased()) else { throw .unknownMethod(text) }
        self = method
    }

    public var description: String { rawValue }

    /// Whether the method reads input statistics at all.
    public var needsStatistics: Bool { self != .magnitude }

    /// Whether the statistics must include the Hessian XᵀX.
    public var needsHessian: Bool { self == .sparseGPT }

    /// Prunes `weight` [out, in] in place with this method; `statistics` may be nil for magnitude.
    @discardableResult
    public func prune(_ weight: Tensor, statistics: InputStatistics?, sparsity: Double,
                      pattern: SparsityPattern, options: SparseGPTOptions = SparseGPTOptions())
        throws(PruningError) -> PruningSummary {
        switch self {
        case .magnitude:
            return try pruneMagnitude(weight, sparsity: sparsity, pattern: pattern)
        case .wanda:
            guard let statistics else { throw .missingStatistics(method: rawValue) }
            return try pruneWanda(weight, statistics: statistics, sparsity: sparsity, pattern: pattern)
        case .sparseGPT:
            guard let statistics else { throw .missingStatistics(method: rawValue) }
            return try pruneSparseGPT(weight, statistics: statistics, sparsity: sparsity,
                                      pattern: pattern, options: options)
        }
    }
}

// MARK: - Shared checks

/// The [out, in] of a weight about to be pruned, after checking it is a finite matrix.
func checkedWeightShape(_ weight: Tensor) throws(PruningError) -> (rows: Int, columns: Int) {
    guard weight.rank == 2 else { throw .weightNotMatrix(shape: weight.shape) }
    let rows = weight.shape[0], columns = weight.shape[1]
    let w = UnsafePointer(weight.pointer)
    // One pass; only when it finds something is the first bad entry located.
    var finite = true
    for i in 0..<weight.count where !w[i].isFinite {
        finite = false
        break
    }
    if !finite {
        let index = (0..<weight.count).first { !w[$0].isFinite }!
        throw .nonFinite(what: "weight", row: index / columns, column: index % columns)
    }
    return (rows, columns)
}

/// Counts the zeros of each row of `w` [rows, columns].
func zerosPerRow(_ w: UnsafePointer<Float>, rows: Int, columns: Int) -> [Int] {
    var counts = [Int](repeating: 0, count: rows)
    counts.withUnsafeMutableBufferPointer { counts in
        let c = counts.baseAddress!
        WorkerPool.shared.parallelFor(rows, minimumChunk: 16) { range in
            for row in range {
                let line = w + row * columns
                var zeros = 0
                for j in 0..<columns where line[j] == 0 { zeros += 1 }
                c[row] = zeros
            }
        }
    }
    return counts
}
