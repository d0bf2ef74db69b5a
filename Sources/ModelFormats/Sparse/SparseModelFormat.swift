import Kernels

// The constants of losad's sparse model file (docs/sparse-format.md, "The model file"), shared by
// the reader and the writer so that losad never writes a file it would refuse to read. This is
// the one table of truth: metadata keys, the version, the four parts of a sparse matrix with
// their ggml types and shapes.

/// The sparse model file's fixed values.
public enum SparseModelFormat {
    /// `general.architecture` of every sparse file: a name no runtime knows, so that one that does
    /// not understand the file stops at the architecture instead of loading masks as weights.
    public static let architecture = "losa-sparse"
    /// The layout version this reader and writer implement.
    public static let version: UInt32 = 2
    /// Columns per mask word and per scale: fixed by the encoding.
    public static let groupSize = SparseMatrix.groupSize
    /// Zero bytes after each value stream, so vector kernels may load a whole group past the last value.
    public static let valuePadding = SparseMatrix.valuePadding
    /// The data alignment the writer sets: every tensor starts on a cache line.
    public static let alignment: UInt32 = 64

    /// Metadata keys (all `losa.sparse.*` keys are the format's; a writer's caller may not set them).
    public enum Key {
        public static let version = "losa.sparse.version"
        public static let architecture = "losa.sparse.architecture"
        public static let sourceFormat = "losa.sparse.source_format"
        public static let groupSize = "losa.sparse.group_size"
        public static let tensors = "losa.sparse.tensors"
        public static let kinds = "losa.sparse.kinds"
        public static let columns = "losa.sparse.columns"
        public static let huggingFaceConfig = "losa.sparse.huggingface.config_json"
        public static let huggingFaceTokenizer = "losa.sparse.huggingface.tokenizer_json"
        /// The prefix of every key above.
        public static let prefix = "losa.sparse."
    }

    /// `losa.sparse.source_format` values: whose names, layout and configuration keys the file keeps.
    public static func sourceFormatName(_ format: Checkpoint.Format) -> String? {
        switch format {
        case .gguf: return "gguf"
        case .huggingFace: return "huggingface"
        case .sparse: return nil
        }
    }

    // MARK: - The four tensors of one sparse matrix

    /// One of the tensors a sparse matrix `<name>` is stored as: `<name><suffix>`.
    public enum Part: String, CaseIterable, Sendable {
        case mask, offsets, values, scales

        /// The tensor name's suffix after the matrix name.
        public var suffix: String { "." + rawValue }

        /// The ggml type the part is stored as (ggml has no unsigned types: offsets are
        /// uint32 stored as I32, masks uint64 as I64; a reader reinterprets the bits).
        public var type: GGMLType {
            switch self {
            case .mask: return .i64
            case .offsets: return .i32
            case .values: return .i8
            case .scales: return .f16
            }
        }

        /// Bytes of one element, which the part's data offset must be a multiple of.
        public var elementBytes: Int { type.bytesPerBlock }

        /// The part's dimensions in ggml order (innermost first) for a matrix of `rows` rows,
        /// `groups` column groups and `valueBytes` packed value bytes (padding excluded).
        public func dimensions(rows: Int, groups: Int, valueBytes: Int) -> [Int] {
            switch self {
            case .mask, .scales: return [groups, rows]
            case .offsets: return [rows + 1]
            case .values: return [valueBytes + SparseModelFormat.valuePadding]
            }
        }

        /// Whether a matrix of `kind` has this part (scales only for the quantised kinds).
        public func isPresent(for kind: SparseValueKind) -> Bool {
            self != .scales || kind != .f16
        }
    }

    /// Column groups of a row of `cols` columns.
    public static func groups(columns cols: Int) -> Int { (cols + groupSize - 1) / groupSize }

    /// The name of the tensor holding `part` of the sparse matrix `name`.
    public static func tensorName(_ name: String, _ part: Part) -> String { name + part.suffix }

    /// The `Checkpoint.TensorEntry.type` of a sparse matrix of `kind`, e.g. "sparse-s8".
    public static func entryType(_ kind: SparseValueKind) -> String { "sparse-" + kind.rawValue }
}
