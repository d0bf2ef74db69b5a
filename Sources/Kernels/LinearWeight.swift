/// A weight matrix W [rows, cols] of a linear layer, in whichever form it is kept: Float32 (what
/// training and pruning change), or compressed and read in place (quantised blocks of a mapped GGUF,
/// losad's sparse encoding) for inference. The decoder calls `apply` and never asks which.
public enum LinearWeight: @unchecked Sendable {
    case dense(Tensor)
    case compressed(any CompressedMatrix)

    public var rows: Int {
        switch self {
        case .dense(let w): return w.rowCount
        case .compressed(let w): return w.rows
        }
    }

    public var cols: Int {
        switch self {
        case .dense(let w): return w.rowLength
        case .compressed(let w): return w.cols
        }
    }

    /// Bytes a product reads: 4 per weight for Float32, the stored size for a compressed matrix.
    public var storedByteCount: Int {
        switch self {
        case .dense(let w): return w.count * MemoryLayout<Float>.stride
        case .compressed(let w): return w.storedByteCount
        }
    }

    /// The Float32 matrix, for code that changes or differentiates weights (training, pruning, merging):
    /// only decoders loaded as Float32 have one.
    public var tensor: Tensor {
        guard case .dense(let w) = self else {
            preconditionFailure("linear weight: a compressed \(rows)×\(cols) matrix has no Float32 tensor; load the model as Float32 to change it")
        }
        return w
    }

    /// y (+)= x · Wᵀ.   x [N, cols]; y [N, rows]. A compressed matrix quantises x into `scratch`
    /// (pass the workspace's; without one a temporary is made).
    public func apply(_ x: Tensor, into y: Tensor, accumulate: Bool = false, scratch: CompressedMatmulScratch?) {
        switch self {
        case .dense(let w): matmul(x, w, transposeB: true, into: y, beta: accumulate ? 1 : 0)
        case .compressed(let w):
            compressedMatmul(x, w, into: y, accumulate: accumulate, scratch: scratch ?? CompressedMatmulScratch())
        }
    }

    /// Copies row `row` of W (as Float32) to `out` [cols]: an embedding lookup.
    public func copyRow(_ row: Int, into out: UnsafeMutablePointer<Float>) {
        switch self {
        case .dense(let w): out.update(from: w.pointer + row * w.rowLength, count: w.rowLength)
        case .compressed(let w): w.dequantize(rows: row..<(row + 1), into: out, path: .best)
        }
    }
}
