import Kernels

/// What pruning needs to know about a projection's inputs, accumulated batch by
/// batch so that calibration data streams through without being kept.
///
/// Shapes: a batch X is [N, in] (N rows — calibration tokens — of the
/// projection's `in` input features; any leading dimensions are rows).
/// Wanda needs the per-column sum of squares ‖X_j‖₂² (Sun et al. 2023,
/// "A Simple and Effective Pruning Approach for Large Language Models");
/// SparseGPT needs the Hessian of the layer-wise squared error, H = 2XᵀX / n
/// (Frantar & Alistarh 2023), which costs in² values and is only gathered when
/// asked for. Sums of squares are kept in Double; the Gram matrix XᵀX in the
/// precision chosen (Float halves its memory, as the reference's float32 does).
public struct InputStatistics: Sendable {
    /// The precision in which XᵀX is accumulated.
    public enum HessianPrecision: String, Sendable, CaseIterable {
        case float32, float64
    }

    /// The largest input width accepted with a Hessian (32768² Doubles are 8 GiB).
    public static let maximumHessianInputs = 32_768
    /// The largest input width accepted without one.
    public static let maximumInputs = 1 << 24

    /// Input features per row (the projection's `in`).
    public let inputs: Int
    /// The Hessian's precision, or nil when it is not gathered.
    public let hessianPrecision: HessianPrecision?
    /// Rows (tokens) seen so far: n.
    public private(set) var rowCount = 0
    /// Σ_rows X_ij² for each input feature j, [in].
    public private(set) var columnSumOfSquares: [Double]
    // XᵀX, in × in row-major; only the upper triangle is accumulated (syrk). One of the two is used.
    private var gramFloat: [Float] = []
    private var gramDouble: [Double] = []

    /// Empty statistics for `inputs` features; `hessian` chooses whether (and how precisely) XᵀX is gathered.
    public init(inputs: Int, hessian: HessianPrecision? = nil) throws(PruningError) {
        let limit = hessian == nil ? Self.maximumInputs : Self.maximumHessianInputs
        guard inputs >= 1, inputs <= limit else { throw .invalidInputs(inputs, limit: limit) }
        self.inputs = inputs
        self.hessianPrecision = hessian
        self.columnSumOfSquares = [Double](repeating: 0, count: inputs)
        switch hessian {
        case .float32: gramFloat = [Float](repeating: 0, count: inputs * inputs)
        case .float64: gramDouble = [Double](repeating: 0, count: inputs * inputs)
        case nil: break
        }
    }

    /// Whether XᵀX is being gathered.
    public var hasHessian: Bool { hessianPrecision != nil }

    /// Adds the rows of `batch` ([N, in], or any shape whose last dimension is `in`).
    ///
    /// A batch with a NaN or infinity is refused whole, before anything is added.
    public mutating func accumulate(_ batch: Tensor) throws(PruningError) {
        guard batch.rank >= 1, batch.rowLength == inputs else {
            throw .batchMismatch(shape: batch.shape, expected: inputs)
        }
        let rows = batch.rowCount, columns = inputs
        guard rows > 0 else { return }
        let x = UnsafePointer(batch.pointer)

        // Sums of squares of this batch first, so a bad batch leaves the totals untouched.
        var batchSums = [Double](repeating: 0, count: columns)
        batchSums.withUnsafeMutableBufferPointer { sums in
            let s = sums.baseAddress!
            WorkerPool.shared.parallelFor(columns, minimumChunk: 64) { range in
                for row in 0..<rows {
                    let line = x + row * columns
                    for j in range {
                        let value = Double(line[j])
                        s[j] += value * value
                    }
                }
            }
        }
        if !batchSums.allSatisfy({ $0.isFinite }) {
            throw Self.firstNonFinite(x, rows: rows, columns: columns)
        }
        for j in 0..<columns { columnSumOfSquares[j] += batchSums[j] }
        rowCount += rows

        switch hessianPrecision {
        case .float32:
            try gramFloat.withUnsafeMutableBufferPointer { gram throws(PruningError) in
                do throws(KernelsError) {
                    try accumulateGram(x, rows: rows, columns: columns, lda: columns,
                                       into: gram.baseAddress!, ldc: columns)
                } catch { throw .numerics(error) }
            }
        case .float64:
            // Convert a bounded slab of rows at a time (at most 4 MiB of Doubles).
            let slabRows = max(1, min(rows, (1 << 19) / columns))
            var slab = [Double](repeating: 0, count: slabRows * columns)
            var start = 0
            while start < rows {
                let count = min(slabRows, rows - start)
                for i in 0..<(count * columns) { slab[i] = Double(x[start * columns + i]) }
                try slab.withUnsafeBufferPointer { a throws(PruningError) in
                    try gramDouble.withUnsafeMutableBufferPointer { gram throws(PruningError) in
                        do throws(KernelsError) {
                            try accumulateGram(a.baseAddress!, rows: count, columns: columns, lda: columns,
                                               into: gram.baseAddress!, ldc: columns)
                        } catch { throw .numerics(error) }
                    }
                }
                start += count
            }
        case nil:
            break
        }
    }

    /// ‖X_j‖₂ = √(Σ_rows X_ij²) for each input feature j, [in].
    public var columnNorms: [Double] { columnSumOfSquares.map { $0.squareRoot() } }

    /// H = 2XᵀX / n, in × in row-major with both triangles filled; nil without a Hessian or before any row.
    public func hessian() -> [Double]? { hessian(as: Double.self) }

    /// `hessian()` in `T` (Float for the least-squares refit), without a Double copy on the way.
    public func hessian<T: BinaryFloatingPoint>(as type: T.Type) -> [T]? {
        guard let precision = hessianPrecision, rowCount > 0 else { return nil }
        let n = inputs
        let scale = 2 / Double(rowCount)
        var h = [T](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in i..<n {
                let value = T(scale * (precision == .float32 ? Double(gramFloat[i * n + j]) : gramDouble[i * n + j]))
                h[i * n + j] = value
                h[j * n + i] = value
            }
        }
        return h
    }

    /// The error naming the first NaN or infinity of a batch (only called once one is known to exist).
    private static func firstNonFinite(_ x: UnsafePointer<Float>, rows: Int, columns: Int) -> PruningError {
        for row in 0..<rows {
            for column in 0..<columns where !x[row * columns + column].isFinite {
                return .nonFinite(what: "calibration batch", row: row, column: column)
            }
        }
        // Finite values whose squares overflow Double do not exist (Float's range is far smaller).
        return .nonFinite(what: "calibration batch", row: -1, column: -1)
    }
}
