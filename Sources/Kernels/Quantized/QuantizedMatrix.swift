import CKernels

/// The GGML block formats with a product kernel (ckernels.h, "Quantised dense products").
///
/// Kernels cannot import ModelFormats, whose `GGMLType` owns the full table of block sizes; these
/// five entries repeat it, and a ModelFormats test holds them to it.
public enum QuantizedBlockType: Sendable, CaseIterable, CustomStringConvertible {
    case q8_0, q4_0, q4_1, q4_K, q6_K

    /// The GGML type id (ggml.h's `enum ggml_type`).
    public var ggmlTypeID: Int32 {
        switch self {
        case .q8_0: return Int32(CK_GGML_Q8_0)
        case .q4_0: return Int32(CK_GGML_Q4_0)
        case .q4_1: return Int32(CK_GGML_Q4_1)
        case .q4_K: return Int32(CK_GGML_Q4_K)
        case .q6_K: return Int32(CK_GGML_Q6_K)
        }
    }

    /// The type with GGML id `id`, or nil when no kernel multiplies it.
    public init?(ggmlTypeID id: Int32) {
        guard let type = Self.allCases.first(where: { $0.ggmlTypeID == id }) else { return nil }
        self = type
    }

    /// Values per block.
    public var blockSize: Int {
        switch self {
        case .q8_0, .q4_0, .q4_1: return 32
        case .q4_K, .q6_K: return 256
        }
    }

    /// Bytes per block (ggml-common.h's block structs).
    public var blockBytes: Int {
        switch self {
        case .q8_0: return 34
        case .q4_0: return 18
        case .q4_1: return 20
        case .q4_K: return 144
        case .q6_K: return 210
        }
    }

    public var description: String {
        switch self {
        case .q8_0: return "Q8_0"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q4_K: return "Q4_K"
        case .q6_K: return "Q6_K"
        }
    }
}

/// Why a quantised matrix could not be wrapped.
public enum QuantizedMatrixError: Error, Sendable, Equatable, CustomStringConvertible {
    /// rows or cols is not positive, or cols does not fit the kernels' 32-bit column count.
    case invalidShape(name: String, rows: Int, cols: Int)
    /// A row of `cols` values is not a whole number of blocks.
    case columnsNotBlockMultiple(name: String, type: QuantizedBlockType, cols: Int)
    /// The bytes given are not rows × cols / blockSize × blockBytes.
    case byteCountMismatch(name: String, type: QuantizedBlockType, rows: Int, cols: Int, expected: Int, actual: Int)

    public var description: String {
        switch self {
        case .invalidShape(let name, let rows, let cols):
            return "quantised matrix '\(name)': shape [\(rows), \(cols)] is not a matrix the kernels can multiply (both must be positive, cols below 2³¹)."
        case .columnsNotBlockMultiple(let name, let type, let cols):
            return "quantised matrix '\(name)': \(cols) columns are not a whole number of \(type) blocks of \(type.blockSize) values; such a tensor cannot be stored as \(type)."
        case .byteCountMismatch(let name, let type, let rows, let cols, let expected, let actual):
            return "quantised matrix '\(name)': \(type) [\(rows), \(cols)] needs \(expected) bytes but \(actual) were given; the file is truncated or its tensor table is wrong."
        }
    }
}

/// A frozen weight matrix W [rows, cols] in one of GGML's block formats, multiplied in place by
/// the C kernels: rows of `rowBytes` bytes, each cols / blockSize blocks (ggml-common.h layouts).
/// The bytes are borrowed (a memory-mapped GGUF, a test's buffer) and `owner` keeps them alive.
///
/// A `path` of `.avx512` runs AVX-512 VNNI products for all five types and the AVX2 kernels for
/// the rest (decoding, activation quantisation): ckernels.h.
///
/// Products pair the weights with activations quantised to 8 bits once per token (ggml's
/// vec_dot_q*_q8_* method), so a product differs from the float product by the activation
/// rounding (about 0.4 % of |x|'s block maximum per value) on top of the weights' own.
public final class QuantizedMatrix: CompressedMatrix, @unchecked Sendable {
    public let type: QuantizedBlockType
    public let rows: Int
    public let cols: Int
    /// Bytes of one row: cols / blockSize × blockBytes.
    public let rowBytes: Int
    /// First byte of row 0 (no alignment assumed).
    public let base: UnsafeRawPointer
    private let owner: AnyObject
    /// Whether the bytes are a mapped file's (not a copy the matrix owns), whose pages `releaseResidentPages` drops.
    private let releasesPages: Bool

    /// Wraps `byteCount` bytes at `base`, which `owner` keeps valid and unchanged; `name` (a tensor
    /// name) goes into errors. `mappedFile`: the bytes are a read-only file mapping, whose pages may be dropped.
    public init(type: QuantizedBlockType, rows: Int, cols: Int, base: UnsafeRawPointer, byteCount: Int,
                owner: AnyObject, name: String, mappedFile: Bool = false) throws {
        guard rows > 0, cols > 0, cols < Int(Int32.max), rows < Int(Int32.max) else {
            throw QuantizedMatrixError.invalidShape(name: name, rows: rows, cols: cols)
        }
        guard cols % type.blockSize == 0 else {
            throw QuantizedMatrixError.columnsNotBlockMultiple(name: name, type: type, cols: cols)
        }
        let rowBytes = cols / type.blockSize * type.blockBytes
        let (expected, overflow) = rows.multipliedReportingOverflow(by: rowBytes)
        guard !overflow, expected == byteCount else {
            throw QuantizedMatrixError.byteCountMismatch(name: name, type: type, rows: rows, cols: cols,
                                                         expected: overflow ? Int.max : expected, actual: byteCount)
        }
        self.type = type
        self.rows = rows
        self.cols = cols
        self.rowBytes = rowBytes
        self.base = base
        self.owner = owner
        releasesPages = mappedFile
    }

    /// Copies `bytes` into a buffer the matrix owns (tests, small matrices built in memory).
    public convenience init(type: QuantizedBlockType, rows: Int, cols: Int, copying bytes: UnsafeRawBufferPointer,
                            name: String) throws {
        let buffer = OwnedBytes(copying: bytes)
        try self.init(type: type, rows: rows, cols: cols, base: UnsafeRawPointer(buffer.pointer),
                      byteCount: bytes.count, owner: buffer, name: name)
    }

    /// Copies `bytes` into a buffer the matrix owns.
    public convenience init(type: QuantizedBlockType, rows: Int, cols: Int, copying bytes: [UInt8], name: String) throws {
        let buffer = bytes.withUnsafeBytes { OwnedBytes(copying: $0) }
        try self.init(type: type, rows: rows, cols: cols, base: UnsafeRawPointer(buffer.pointer),
                      byteCount: bytes.count, owner: buffer, name: name)
    }

    public var storedByteCount: Int { rows * rowBytes }

    public var activationRowBytes: Int { ck_quant_activation_row_bytes(type.ggmlTypeID, Int32(cols)) }

    public func quantizeActivations(_ x: UnsafePointer<Float>, tokens: Int, stride: Int,
                                    into act: UnsafeMutableRawPointer, path: KernelPath) {
        precondition(tokens >= 0 && stride >= cols, "quantised matrix: \(tokens) tokens of stride \(stride) for \(cols) columns")
        ck_quant_quantize_activations(type.ggmlTypeID, x, Int32(tokens), Int32(cols), stride, act,
                                      path.rawValue)
    }

    public func multiply(activations act: UnsafeRawPointer, tokens: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                         rows rowRange: Range<Int>, accumulate: Bool, path: KernelPath) {
        precondition(rowRange.lowerBound >= 0 && rowRange.upperBound <= rows && ldy >= rows,
                     "quantised matrix: rows \(rowRange) of \(rows), ldy \(ldy)")
        ck_quant_matmul(type.ggmlTypeID, base, rowBytes, Int32(cols), act, Int32(tokens), y, ldy,
                        Int32(rowRange.lowerBound), Int32(rowRange.upperBound), accumulate ? 1 : 0,
                        path.rawValue)
    }

    public func dequantize(rows rowRange: Range<Int>, into out: UnsafeMutablePointer<Float>, path: KernelPath) {
        precondition(rowRange.lowerBound >= 0 && rowRange.upperBound <= rows, "quantised matrix: rows \(rowRange) of \(rows)")
        ck_quant_dequantize_rows(type.ggmlTypeID, base, rowBytes, Int32(cols), Int32(rowRange.lowerBound),
                                 Int32(rowRange.upperBound), out, path.rawValue)
    }

    public func releaseResidentPages(rows rowRange: Range<Int>) {
        guard releasesPages else { return }
        releaseMappedPages(base + rowRange.lowerBound * rowBytes, byteCount: rowRange.count * rowBytes)
    }
}

/// Bytes copied into memory the matrix owns.
private final class OwnedBytes {
    let pointer: UnsafeMutableRawPointer

    init(copying bytes: UnsafeRawBufferPointer) {
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, bytes.count), alignment: 64)
        if let source = bytes.baseAddress, bytes.count > 0 {
            pointer.copyMemory(from: source, byteCount: bytes.count)
        }
    }

    deinit { pointer.deallocate() }
}
