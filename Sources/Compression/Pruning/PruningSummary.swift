/// What one pruning call did to a weight [out, in].
public struct PruningSummary: Sendable, Equatable {
    public let method: PruningMethod
    public let pattern: SparsityPattern
    /// Output rows (out).
    public let rows: Int
    /// Inputs per row (in).
    public let columns: Int
    /// The zeros each row was pruned to: round(s · in) unstructured, in / M · (M − N) for N:M.
    public let targetZerosPerRow: Int
    /// The zeros counted in each row afterwards, [out]. A row ends above the target only
    /// when it already had more zeros than that (those stay zero; see the methods).
    public let zerosPerRow: [Int]
    /// Input columns that SparseGPT found dead (H_jj = 0, never active in calibration) and zeroed; 0 for the other methods.
    public let deadInputs: Int
    /// SparseGPT's estimate of the squared error it introduced, Σ (w − q)² / U_jj² / 2 over every
    /// weight, U the upper Cholesky factor of H⁻¹ (the reference's reported error); nil for the other methods.
    public let estimatedError: Double?

    public init(method: PruningMethod, pattern: SparsityPattern, rows: Int, columns: Int,
                targetZerosPerRow: Int, zerosPerRow: [Int], deadInputs: Int = 0, estimatedError: Double? = nil) {
        self.method = method
        self.pattern = pattern
        self.rows = rows
        self.columns = columns
        self.targetZerosPerRow = targetZerosPerRow
        self.zerosPerRow = zerosPerRow
        self.deadInputs = deadInputs
        self.estimatedError = estimatedError
    }

    /// Zeros in the whole weight.
    public var zeros: Int { zerosPerRow.reduce(0, +) }

    /// The fraction of the weight that is zero.
    public var sparsity: Double { rows * columns == 0 ? 0 : Double(zeros) / Double(rows * columns) }

    /// Rows whose zero count is not the target (they had more zeros before pruning).
    public var rowsAboveTarget: Int { zerosPerRow.count { $0 != targetZerosPerRow } }
}
