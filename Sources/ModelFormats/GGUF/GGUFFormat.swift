// The constants and limits of the GGUF format, shared by the reader and the
// writer so that losad never writes a file it would refuse to read.
//
// Specification: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md.
// Where the specification leaves a limit open, we take the one llama.cpp's
// ggml/src/gguf.cpp enforces, so that whatever we accept llama.cpp can load.

/// The GGUF format's fixed values and losad's limits for it.
enum GGUFFormat {
    /// The four bytes every GGUF file starts with.
    static let magic: [UInt8] = Array("GGUF".utf8)
    /// Versions the reader accepts: 2 (64-bit counts) and 3 (same layout, endianness note).
    static let readableVersions: ClosedRange<UInt32> = 2...3
    /// The version the writer produces.
    static let writtenVersion: UInt32 = 3
    /// The alignment of tensor data when `general.alignment` is absent.
    static let defaultAlignment = 32
    /// The metadata key that sets the alignment (a uint32 power of two).
    static let alignmentKey = "general.alignment"
    /// ggml tensors have at most four dimensions (GGML_MAX_DIMS).
    static let maxDimensions = 4
    /// ggml keeps names in a 64-byte buffer with a terminating NUL (GGML_MAX_NAME).
    static let maxTensorNameBytes = 63
    /// The spec limits keys to 2^16 − 1 bytes.
    static let maxKeyBytes = 65_535
    /// The longest string losad reads, as gguf.cpp (GGUF_MAX_STRING_LENGTH): a
    /// whole tokenizer.json fits; a corrupt length in a large file does not
    /// make us validate and copy gigabytes.
    static let maxStringBytes = 1 << 30
    /// The longest metadata array losad reads. Real vocabularies hold a few
    /// hundred thousand entries; the cap bounds what a corrupt length in a
    /// large file can make us allocate (gguf.cpp allows 2^30).
    static let maxArrayLength = 1 << 24
    /// Nested metadata arrays deeper than this are refused, which keeps the
    /// recursive reader's stack bounded on hostile input (real files nest at most once).
    static let maxArrayNesting = 16

    /// The fewest bytes one metadata entry can take: key length, a one-byte
    /// key, the type tag and a one-byte value.
    static let minimumMetadataEntryBytes = 8 + 1 + 4 + 1
    /// The fewest bytes one tensor info can take: name length (names may be
    /// empty), dimension count, type and offset.
    static let minimumTensorInfoBytes = 8 + 4 + 4 + 8

    /// `offset` rounded up to a multiple of `alignment` (a power of two); nil on overflow.
    static func aligned(_ offset: Int, to alignment: Int) -> Int? {
        let (sum, overflow) = offset.addingReportingOverflow(alignment - 1)
        return overflow ? nil : sum & ~(alignment - 1)
    }

    static func isValidAlignment(_ value: UInt32) -> Bool {
        value != 0 && value & (value - 1) == 0
    }
}

extension GGUFValueType {
    /// The fewest bytes a value of this type takes inside an array: used to
    /// bound a declared array length by the bytes left in the file before allocating.
    var minimumEncodedBytes: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string: return 8  // the length; the text may be empty
        case .array: return 4 + 8  // element type and length; the array may be empty
        }
    }
}
