import Kernels

/// A sparse matrix of a file being written, known by its sizes from the start (the header needs them) and encoded
/// only when the writer reaches its first part, then let go after its last: `SparseModelWriter` holds one encoded
/// matrix at a time — for a 7B LLaMA shape one projection's ~50 MB at s8, not the model's ~7 GB.
///
/// `@unchecked Sendable`: its state changes only inside `GGUFWriter.write`, which calls the producers one after
/// another on its own thread.
final class DeferredSparseMatrix: @unchecked Sendable {
    let name: String
    let kind: SparseValueKind
    let rows: Int
    let cols: Int
    /// Packed value bytes, padding excluded (`SparseMatrix.valueByteCount` of the encoding).
    let valueBytes: Int
    /// Weights stored (nonzero).
    let storedCount: Int
    private let file: String
    private let encode: () throws -> SparseMatrix
    private var encoded: SparseMatrix?
    private var partsLeft: Int

    init(name: String, file: String, kind: SparseValueKind, rows: Int, cols: Int, valueBytes: Int, storedCount: Int,
         encode: @escaping () throws -> SparseMatrix) {
        self.name = name
        self.file = file
        self.kind = kind
        self.rows = rows
        self.cols = cols
        self.valueBytes = valueBytes
        self.storedCount = storedCount
        self.encode = encode
        partsLeft = SparseModelFormat.Part.allCases.filter { $0.isPresent(for: kind) }.count
    }

    /// A matrix encoded already.
    convenience init(encoded matrix: SparseMatrix, name: String) {
        self.init(name: name, file: "", kind: matrix.kind, rows: matrix.rows, cols: matrix.cols,
                  valueBytes: matrix.valueByteCount, storedCount: matrix.storedCount) { matrix }
    }

    var groups: Int { SparseModelFormat.groups(columns: cols) }

    /// Whether an encoding is held now (between the first part written and the last).
    var holdsEncoding: Bool { encoded != nil }

    /// Bytes of its parts as stored (padding between tensors excluded).
    var storedByteCount: Int { SparseMatrix.storedByteCount(rows: rows, groups: groups, valueBytes: valueBytes, kind: kind) }

    /// The fraction of weights stored.
    var density: Double { Double(storedCount) / (Double(rows) * Double(cols)) }

    /// Hands `part`'s bytes to `write`, encoding the matrix first if no part has been written yet.
    func write(_ part: SparseModelFormat.Part, to write: (UnsafeRawBufferPointer) throws -> Void) throws {
        let matrix: SparseMatrix
        if let encoded {
            matrix = encoded
        } else {
            matrix = try encode()
            // The header promised these sizes; an encoding that differs would misplace every later tensor.
            guard matrix.rows == rows, matrix.cols == cols, matrix.kind == kind, matrix.valueByteCount == valueBytes else {
                throw ModelFormatError.invalid(file: file, field: "sparse tensor '\(name)'",
                                               reason: "its encoding (\(matrix.rows)×\(matrix.cols) \(matrix.kind), \(matrix.valueByteCount) value bytes) differs from the planned \(rows)×\(cols) \(kind), \(valueBytes) value bytes")
            }
            encoded = matrix
        }
        defer {
            partsLeft -= 1
            if partsLeft == 0 { encoded = nil }
        }
        let words = rows * groups
        switch part {
        case .mask:
            try SparseModelWriter.littleEndian(matrix.masks, count: words).withUnsafeBytes(write)
        case .offsets:
            try SparseModelWriter.littleEndian(matrix.rowOffsets, count: rows + 1).withUnsafeBytes(write)
        case .values:
            try write(UnsafeRawBufferPointer(start: matrix.values, count: valueBytes + SparseModelFormat.valuePadding))
        case .scales:
            try SparseModelWriter.littleEndian(matrix.scales!, count: words).withUnsafeBytes(write)
        }
    }
}
