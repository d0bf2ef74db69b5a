/// A band of a sparse matrix's rows as a matrix of its own (a fused tensor's q, k or v rows, phi3):
/// masks, values and scales borrowed in place, since the encoding stores them row by row; only the
/// row offsets are rebased into a small array of its own.
extension SparseMatrix {
    /// Rows `range` of this matrix, sharing its storage (kept alive by the result).
    public func rows(_ range: Range<Int>) -> SparseMatrix {
        precondition(!range.isEmpty && range.lowerBound >= 0 && range.upperBound <= rows,
                     "sparse matrix: rows \(range) of \(rows)")
        let band = RowBand(source: self, range: range)
        let start = Int(rowOffsets[range.lowerBound])
        return SparseMatrix(rows: range.count, cols: cols, kind: kind, masks: masks + range.lowerBound * groups,
                            rowOffsets: band.offsets, values: values + start, valueBufferByteCount: valueBufferByteCount - start,
                            scales: scales.map { $0 + range.lowerBound * groups }, owner: band)
    }
}

/// Keeps a row band's source matrix alive and owns its rebased offsets.
private final class RowBand: @unchecked Sendable {
    // @unchecked: immutable after init.
    let source: SparseMatrix
    let offsets: UnsafeMutablePointer<UInt32>

    init(source: SparseMatrix, range: Range<Int>) {
        self.source = source
        offsets = .allocate(capacity: range.count + 1)
        let start = source.rowOffsets[range.lowerBound]
        for i in 0...range.count { offsets[i] = source.rowOffsets[range.lowerBound + i] - start }
    }

    deinit { offsets.deallocate() }
}
