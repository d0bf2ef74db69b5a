import CKernels

/// How a sparse matrix stores its nonzeros (docs/sparse-format.md, "The encoding").
public enum SparseValueKind: String, Sendable, CaseIterable, Codable {
    /// int8 × one f16 scale per 64-column group.
    case s8
    /// 4-bit (nibble − 8) × one f16 scale per 64-column group.
    case s4
    /// IEEE half values, no scales.
    case f16

    /// The C kernels' id for this kind.
    public var kernelKind: Int32 {
        switch self {
        case .s8: return Int32(CK_SPARSE_S8.rawValue)
        case .s4: return Int32(CK_SPARSE_S4.rawValue)
        case .f16: return Int32(CK_SPARSE_F16.rawValue)
        }
    }

    /// Bytes that hold `n` stored values of one group.
    public func valueBytes(count n: Int) -> Int {
        switch self {
        case .s8: return n
        case .s4: return (n + 1) / 2
        case .f16: return 2 * n
        }
    }
}

/// One matrix in losad's compact sparse encoding: 1-bit mask per weight, the stored values packed
/// row by row, f16 scales per (row, 64-column group). The four arrays are borrowed from `owner`
/// (an encoder's buffer or a memory-mapped file), which keeps them alive.
///
/// Shapes: masks [rows, groups] UInt64; rowOffsets [rows + 1] UInt32; values [rowOffsets[rows] + 64]
/// bytes; scales [rows, groups] f16 bits (nil for `.f16`). groups = ceil(cols / 64).
public final class SparseMatrix: @unchecked Sendable {
    public static let groupSize = Int(CK_SPARSE_GROUP)
    public static let valuePadding = Int(CK_SPARSE_VALUE_PADDING)

    public let rows: Int
    public let cols: Int
    public let kind: SparseValueKind
    public let masks: UnsafePointer<UInt64>
    public let rowOffsets: UnsafePointer<UInt32>
    public let values: UnsafePointer<UInt8>
    public let scales: UnsafePointer<UInt16>?
    /// Bytes of the buffer behind `values`, padding included: what `validate` holds the offsets to.
    public let valueBufferByteCount: Int
    private let owner: AnyObject

    /// Mask words per row.
    public var groups: Int { (cols + Self.groupSize - 1) / Self.groupSize }
    /// Bytes of packed values (without the padding).
    public var valueByteCount: Int { Int(rowOffsets[rows]) }
    /// Bytes of the whole encoding as stored: masks, offsets, values with padding, scales.
    public var storedByteCount: Int {
        Self.storedByteCount(rows: rows, groups: groups, valueBytes: valueByteCount, kind: kind)
    }

    /// Bytes of an encoding of `rows` rows of `groups` column groups with `valueBytes` packed value bytes, as stored
    /// (what a writer must declare before it encodes).
    public static func storedByteCount(rows: Int, groups: Int, valueBytes: Int, kind: SparseValueKind) -> Int {
        rows * groups * 8 + (rows + 1) * 4 + valueBytes + valuePadding + (kind == .f16 ? 0 : rows * groups * 2)
    }

    /// Wraps arrays that `owner` keeps valid; the caller has checked them (see `validate`), so the
    /// value buffer is taken to be exactly `rowOffsets[rows]` + padding bytes.
    public convenience init(rows: Int, cols: Int, kind: SparseValueKind, masks: UnsafePointer<UInt64>,
                            rowOffsets: UnsafePointer<UInt32>, values: UnsafePointer<UInt8>, scales: UnsafePointer<UInt16>?,
                            owner: AnyObject) {
        self.init(rows: rows, cols: cols, kind: kind, masks: masks, rowOffsets: rowOffsets, values: values,
                  valueBufferByteCount: Int(rowOffsets[rows]) + Self.valuePadding, scales: scales, owner: owner)
    }

    init(rows: Int, cols: Int, kind: SparseValueKind, masks: UnsafePointer<UInt64>, rowOffsets: UnsafePointer<UInt32>,
         values: UnsafePointer<UInt8>, valueBufferByteCount: Int, scales: UnsafePointer<UInt16>?, owner: AnyObject) {
        precondition(rows > 0 && cols > 0 && rows < Int(Int32.max) && cols < Int(Int32.max),
                     "sparse matrix: \(rows) × \(cols)")
        precondition((scales == nil) == (kind == .f16), "sparse matrix: scales are required exactly for s8 and s4")
        self.rows = rows
        self.cols = cols
        self.kind = kind
        self.masks = masks
        self.rowOffsets = rowOffsets
        self.values = values
        self.valueBufferByteCount = valueBufferByteCount
        self.scales = scales
        self.owner = owner
    }

    /// Weights stored (mask bits set).
    public var storedCount: Int {
        var stored = 0
        for i in 0..<(rows * groups) { stored += masks[i].nonzeroBitCount }
        return stored
    }

    /// Fraction of the rows × cols weights that are stored (mask bits set).
    public var density: Double { Double(storedCount) / (Double(rows) * Double(cols)) }

    /// The C kernels' view of this matrix (valid while `self` lives).
    public var kernelView: ck_sparse_matrix {
        ck_sparse_matrix(rows: Int32(rows), cols: Int32(cols), kind: kind.kernelKind, masks: masks,
                         row_offsets: rowOffsets, values: values, scales: scales)
    }
}
