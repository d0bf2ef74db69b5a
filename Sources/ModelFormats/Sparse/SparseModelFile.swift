import Foundation
import Kernels

/// losad's sparse model file opened for reading: a GGUF file (docs/sparse-format.md, "The model
/// file") whose pruned matrices are each four tensors — mask, row offsets, values, scales — and
/// whose other tensors are ordinary GGUF tensors.
///
/// Everything is checked when the file is opened, before any view is handed out: the format's
/// metadata and version, every sparse matrix's four tensors (types, shapes, alignment) and their
/// contents (Kernels' `SparseMatrix.validate`, then the file's own rules: the last offset is the
/// value stream's length, zero padding, finite f16 values). Errors name the file, the tensor or
/// metadata key, and the field.
public final class SparseModelFile: @unchecked Sendable {
    // @unchecked: immutable after init; the views point into `file`'s mapping, which `file` keeps alive.

    /// One sparse matrix of the file: its logical shape, its kind and the tensors that hold it.
    public struct SparseTensor: Sendable {
        /// The matrix's name (the source's tensor name, e.g. `blk.0.attn_q.weight`).
        public let name: String
        public let rows: Int
        public let cols: Int
        public let kind: SparseValueKind
        /// The GGUF tensors holding the parts (no `.scales` for f16).
        public let parts: [SparseModelFormat.Part: GGUFTensorInfo]
        /// Packed value bytes, padding excluded.
        public let valueByteCount: Int
        /// Weights stored (set mask bits).
        public let storedCount: Int

        /// Row-major logical shape [rows, cols].
        public var shape: [Int] { [rows, cols] }
        /// Bytes the four parts take in the file (padding between tensors excluded).
        public var storedByteCount: Int { parts.values.reduce(0) { $0 + $1.byteCount } }
        /// The fraction of weights stored.
        public var density: Double { Double(storedCount) / Double(rows * cols) }
    }

    /// A tensor of the file in file order: a sparse matrix (listed at its first part) or a dense tensor.
    public enum Entry: Sendable {
        case sparse(SparseTensor)
        case dense(GGUFTensorInfo)

        public var name: String {
            switch self {
            case .sparse(let tensor): return tensor.name
            case .dense(let info): return info.name
            }
        }

        /// Row-major logical shape.
        public var shape: [Int] {
            switch self {
            case .sparse(let tensor): return tensor.shape
            case .dense(let info): return info.shape
            }
        }
    }

    /// The GGUF file underneath.
    public let file: GGUFFile
    /// `losa.sparse.version`.
    public let version: UInt32
    /// `losa.sparse.architecture`: the model family whose configuration keys the file keeps ("llama").
    public let family: String
    /// `losa.sparse.source_format`: whose tensor names and layout the file keeps (.gguf or .huggingFace).
    public let sourceFormat: Checkpoint.Format
    /// Every tensor in file order, sparse matrices as one entry each.
    public let entries: [Entry]
    /// config.json and tokenizer.json as the Hugging Face source had them (nil for a GGUF source).
    public let huggingFaceConfig: Data?
    public let huggingFaceTokenizer: Data?
    private let sparseIndex: [String: SparseTensor]
    /// The checked kernel views, by matrix name, borrowed from `file`'s mapping.
    private let views: [String: SparseMatrix]

    public var path: String { file.path }

    /// Whether `file` says it is a sparse model file (`general.architecture` is "losa-sparse").
    public static func isSparse(_ file: GGUFFile) -> Bool {
        file.metadata["general.architecture"]?.stringValue == SparseModelFormat.architecture
    }

    /// Maps and checks the sparse model file at `path`.
    public convenience init(path: String) throws {
        try self.init(file: try GGUFFile(path: path))
    }

    /// Checks an opened GGUF file as a sparse model file.
    public init(file: GGUFFile) throws {
        self.file = file
        let reader = MetadataReader(file: file)
        let architecture = try reader.string("general.architecture")
        guard architecture == SparseModelFormat.architecture else {
            throw ModelFormatError.invalid(file: file.path, field: reader.field("general.architecture"),
                                           reason: "'\(architecture)' is not '\(SparseModelFormat.architecture)'; this is not a losad sparse model file")
        }
        version = try reader.uint32(SparseModelFormat.Key.version)
        guard version == SparseModelFormat.version else {
            throw ModelFormatError.unsupported(file: file.path, field: reader.field(SparseModelFormat.Key.version),
                                               reason: "version \(version); this losad reads sparse model files of version \(SparseModelFormat.version) only (version 1 stored s4 values as nibble − 8: write the file again with this losad)")
        }
        family = try reader.string(SparseModelFormat.Key.architecture)
        guard !family.isEmpty, family != SparseModelFormat.architecture else {
            throw ModelFormatError.invalid(file: file.path, field: reader.field(SparseModelFormat.Key.architecture),
                                           reason: "'\(family)' names no model family")
        }
        let source = try reader.string(SparseModelFormat.Key.sourceFormat)
        switch source {
        case "gguf": sourceFormat = .gguf
        case "huggingface": sourceFormat = .huggingFace
        default:
            throw ModelFormatError.unsupported(file: file.path, field: reader.field(SparseModelFormat.Key.sourceFormat),
                                               reason: "'\(source)'; a sparse model file keeps the layout of a 'gguf' or 'huggingface' source")
        }
        let groupSize = try reader.uint32(SparseModelFormat.Key.groupSize)
        guard groupSize == SparseModelFormat.groupSize else {
            throw ModelFormatError.unsupported(file: file.path, field: reader.field(SparseModelFormat.Key.groupSize),
                                               reason: "groups of \(groupSize) columns; the encoding's groups are \(SparseModelFormat.groupSize)")
        }
        if sourceFormat == .huggingFace {
            huggingFaceConfig = Data(try reader.string(SparseModelFormat.Key.huggingFaceConfig).utf8)
            huggingFaceTokenizer = Data(try reader.string(SparseModelFormat.Key.huggingFaceTokenizer).utf8)
        } else {
            huggingFaceConfig = nil
            huggingFaceTokenizer = nil
        }

        // The table of sparse matrices: three arrays of one length.
        let names = try reader.array(SparseModelFormat.Key.tensors, of: .string)
        let kinds = try reader.array(SparseModelFormat.Key.kinds, of: .string)
        let columns = try reader.array(SparseModelFormat.Key.columns, of: .uint32)
        guard !names.isEmpty else {
            throw ModelFormatError.invalid(file: file.path, field: reader.field(SparseModelFormat.Key.tensors),
                                           reason: "the list is empty; a sparse model file holds at least one sparse matrix")
        }
        for (key, array) in [(SparseModelFormat.Key.kinds, kinds), (SparseModelFormat.Key.columns, columns)] where array.count != names.count {
            throw ModelFormatError.invalid(file: file.path, field: reader.field(key),
                                           reason: "\(array.count) elements for the \(names.count) names of \(SparseModelFormat.Key.tensors)")
        }
        var index: [String: SparseTensor] = [:]
        var views: [String: SparseMatrix] = [:]
        for position in 0..<names.count {
            let name = names[position].stringValue!
            guard !name.isEmpty, index[name] == nil else {
                throw ModelFormatError.invalid(file: file.path, field: reader.field(SparseModelFormat.Key.tensors) + " value[\(position)]",
                                               reason: name.isEmpty ? "an empty name" : "'\(name)' is listed twice")
            }
            guard let kind = SparseValueKind(rawValue: kinds[position].stringValue!) else {
                throw ModelFormatError.unsupported(file: file.path, field: reader.field(SparseModelFormat.Key.kinds) + " value[\(position)]",
                                                   reason: "'\(kinds[position].stringValue!)' (of '\(name)') is not a value kind losad reads (s8, s4, f16)")
            }
            let cols = columns[position].intValue!
            guard cols >= 1, cols <= Int(Int32.max) else {
                throw ModelFormatError.invalid(file: file.path, field: reader.field(SparseModelFormat.Key.columns) + " value[\(position)]",
                                               reason: "'\(name)' has \(cols) columns; a matrix has 1…\(Int32.max)")
            }
            guard file.tensorInfo(named: name) == nil else {
                throw ModelFormatError.invalid(file: file.path, field: "tensor '\(name)'",
                                               reason: "the name is both a dense tensor and a sparse matrix of \(SparseModelFormat.Key.tensors)")
            }
            let (tensor, view) = try Self.checkedMatrix(name: name, kind: kind, cols: cols, in: file)
            index[name] = tensor
            views[name] = view
        }
        sparseIndex = index
        self.views = views

        // File order; a matrix appears where its mask is.
        var partOwners: [String: String] = [:]
        for tensor in index.values {
            for info in tensor.parts.values { partOwners[info.name] = tensor.name }
        }
        var entries: [Entry] = []
        for info in file.tensors {
            if let owner = partOwners[info.name] {
                if info.name == SparseModelFormat.tensorName(owner, .mask) { entries.append(.sparse(index[owner]!)) }
            } else {
                entries.append(.dense(info))
            }
        }
        self.entries = entries
    }

    // MARK: - Checks

    /// The four parts of `name`: present (scales exactly for s8/s4), of their types and shapes,
    /// aligned for their element type, and holding an encoding Kernels' validating init accepts and
    /// the file's own rules (`checkFileRules`); with the kernels' view of them.
    private static func checkedMatrix(name: String, kind: SparseValueKind, cols: Int,
                                      in file: GGUFFile) throws -> (SparseTensor, SparseMatrix) {
        let groups = SparseModelFormat.groups(columns: cols)
        var parts: [SparseModelFormat.Part: GGUFTensorInfo] = [:]
        for part in SparseModelFormat.Part.allCases {
            let partName = SparseModelFormat.tensorName(name, part)
            let label = "tensor '\(partName)'"
            guard let info = file.tensorInfo(named: partName) else {
                guard !part.isPresent(for: kind) else {
                    throw ModelFormatError.invalid(file: file.path, field: label,
                                                   reason: "missing; the \(kind) sparse matrix '\(name)' is stored as \(SparseModelFormat.Part.allCases.filter { $0.isPresent(for: kind) }.map(\.rawValue).joined(separator: ", "))")
                }
                continue
            }
            guard part.isPresent(for: kind) else {
                throw ModelFormatError.invalid(file: file.path, field: label, reason: "an f16 sparse matrix has no scales")
            }
            guard info.type == part.type else {
                throw ModelFormatError.invalid(file: file.path, field: label + " type",
                                               reason: "\(info.type); a sparse matrix's \(part.rawValue) is \(part.type)")
            }
            let address = Int(bitPattern: file.rawBytes(of: info).baseAddress)
            guard address % part.elementBytes == 0 else {
                throw ModelFormatError.invalid(file: file.path, field: label + " offset",
                                               reason: "its data at file offset \(info.fileOffset) are not aligned to its \(part.elementBytes)-byte elements (the file's alignment is \(file.alignment))")
            }
            parts[part] = info
        }
        let mask = parts[.mask]!, offsets = parts[.offsets]!, values = parts[.values]!
        func shapeError(_ info: GGUFTensorInfo, _ expected: String) -> ModelFormatError {
            .invalid(file: file.path, field: "tensor '\(info.name)' shape",
                     reason: "ggml dimensions \(info.dimensions) where \(expected) is expected (\(cols) columns in groups of \(SparseModelFormat.groupSize))")
        }
        guard mask.dimensions.count == 2, mask.dimensions[0] == groups, mask.dimensions[1] >= 1,
              mask.dimensions[1] <= Int(Int32.max) else {
            throw shapeError(mask, "[\(groups), rows] with 1 ≤ rows ≤ \(Int32.max)")
        }
        let rows = mask.dimensions[1]
        let dimensions: (SparseModelFormat.Part) -> [Int] = { $0.dimensions(rows: rows, groups: groups, valueBytes: 0) }
        guard offsets.dimensions == dimensions(.offsets) else { throw shapeError(offsets, "\(dimensions(.offsets))") }
        guard values.dimensions.count == 1, values.dimensions[0] >= SparseModelFormat.valuePadding,
              values.dimensions[0] - SparseModelFormat.valuePadding <= Int(UInt32.max) else {
            throw shapeError(values, "[value bytes + \(SparseModelFormat.valuePadding)] with at most \(UInt32.max) value bytes")
        }
        if let scales = parts[.scales], scales.dimensions != dimensions(.scales) {
            throw shapeError(scales, "\(dimensions(.scales))")
        }
        let valueBytes = values.dimensions[0] - SparseModelFormat.valuePadding
        // Each part's whole byte range in the mapping (GGUF's checks keep it inside the file), so that
        // the validating init holds every read, its own and the kernels', to the tensor's bytes.
        let matrix: SparseMatrix
        do {
            matrix = try SparseMatrix(rows: rows, cols: cols, kind: kind, masks: file.rawBytes(of: mask),
                                      rowOffsets: file.rawBytes(of: offsets), values: file.rawBytes(of: values),
                                      scales: parts[.scales].map { file.rawBytes(of: $0) }, owner: file)
        } catch {
            throw fileError(error.named(name), file: file.path)
        }
        try checkFileRules(matrix, name: name, valueBytes: valueBytes, file: file.path)
        let tensor = SparseTensor(name: name, rows: rows, cols: cols, kind: kind, parts: parts,
                                  valueByteCount: valueBytes, storedCount: matrix.storedCount)
        return (tensor, matrix)
    }

    /// What the file asks beyond a valid encoding (docs/sparse-format.md, "What a reader must check",
    /// step 5): the `.values` tensor is the stream and its padding exactly (the encoding allows a
    /// longer buffer), the padding is zero, and f16 values are finite (s8/s4 scales are checked by
    /// `validate`).
    private static func checkFileRules(_ matrix: SparseMatrix, name: String, valueBytes: Int, file: String) throws {
        let last = Int(matrix.rowOffsets[matrix.rows])
        guard last == valueBytes else {
            throw ModelFormatError.invalid(file: file, field: "tensor '\(SparseModelFormat.tensorName(name, .offsets))' element \(matrix.rows)",
                                           reason: "the last offset is \(last), but the value stream holds \(valueBytes) bytes before its padding")
        }
        for index in valueBytes..<(valueBytes + SparseModelFormat.valuePadding) where matrix.values[index] != 0 {
            throw ModelFormatError.invalid(file: file, field: "tensor '\(SparseModelFormat.tensorName(name, .values))' element \(index)",
                                           reason: "padding byte \(index - valueBytes) is \(matrix.values[index]), not 0")
        }
        if matrix.kind == .f16 {
            for index in stride(from: 0, to: valueBytes, by: 2) {
                let bits = UInt16(matrix.values[index]) | UInt16(matrix.values[index + 1]) << 8
                guard Float16(bitPattern: bits).isFinite else {
                    throw ModelFormatError.invalid(file: file, field: "tensor '\(SparseModelFormat.tensorName(name, .values))' element \(index)",
                                                   reason: "the f16 value is \(Float16(bitPattern: bits))")
                }
            }
        }
    }

    /// Kernels' error for a matrix of the file as the reader's: the part's tensor (`NAME.offsets` …)
    /// and where in it — the element of the offsets, the row and group of the others.
    static func fileError(_ error: SparseFormatError, file: String) -> ModelFormatError {
        let name = error.tensor ?? "?"
        let part: SparseModelFormat.Part? = switch error.field {
        case .shape: nil
        case .mask: .mask
        case .rowOffsets: .offsets
        case .values: .values
        case .scales: .scales
        }
        var field = part.map { "tensor '\(SparseModelFormat.tensorName(name, $0))'" } ?? "sparse matrix '\(name)'"
        if let row = error.row { field += part == .offsets ? " element \(row)" : " row \(row)" }
        if let group = error.group { field += " group \(group)" }
        return .invalid(file: file, field: field, reason: error.problem)
    }

    // MARK: - Access

    /// The sparse matrices in file order.
    public var sparseTensors: [SparseTensor] {
        entries.compactMap { if case .sparse(let tensor) = $0 { return tensor } else { return nil } }
    }

    /// The sparse matrix called `name`, if the file has one.
    public func sparseTensor(named name: String) -> SparseTensor? { sparseIndex[name] }

    /// `tensor`'s kernel view, borrowed from the mapped file (no copy; valid while the view lives).
    public func matrix(_ tensor: SparseTensor) -> SparseMatrix {
        guard let view = views[tensor.name], view.rows == tensor.rows, view.cols == tensor.cols, view.kind == tensor.kind else {
            preconditionFailure("sparse matrix '\(tensor.name)' is not one of \(path)'s")
        }
        return view
    }

    /// The tensor called `name` as Float32, row-major: a sparse matrix decoded by the C kernels over
    /// the worker pool (`SparseMatrix.dequantized`, bit for bit its reference `decode()`), a dense one dequantised.
    public func tensor(named name: String) throws -> Tensor {
        if let view = views[name] { return view.dequantized() }
        guard let info = file.tensorInfo(named: name), partOwner(of: name) == nil else {
            throw ModelFormatError.invalid(file: path, field: "tensor '\(name)'", reason: "the file has no dense tensor or sparse matrix of that name")
        }
        return try file.tensor(info)
    }

    /// Row-major logical shapes by name: a sparse matrix's [rows, cols], a dense tensor's own.
    public var tensorShapes: [String: [Int]] {
        Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0.shape) })
    }

    /// The metadata a GGUF source had, as `ModelConfig` and `Tokenizer` read it: the file's keys
    /// with `general.architecture` set back to the model family.
    public var sourceMetadata: [String: GGUFValue] {
        var metadata = file.metadata.dictionary
        metadata["general.architecture"] = .string(family)
        return metadata
    }

    private func partOwner(of name: String) -> String? {
        for part in SparseModelFormat.Part.allCases where name.hasSuffix(part.suffix) {
            let owner = String(name.dropLast(part.suffix.count))
            if sparseIndex[owner]?.parts[part] != nil { return owner }
        }
        return nil
    }
}

/// Typed lookups of the format's metadata keys, with errors naming the key as the GGUF reader does.
private struct MetadataReader {
    let file: GGUFFile

    func field(_ key: String) -> String {
        file.metadata.index(of: key).map { "metadata key \($0) '\(key)'" } ?? "metadata key '\(key)'"
    }

    private func value(_ key: String) throws -> GGUFValue {
        guard let value = file.metadata[key] else {
            throw ModelFormatError.invalid(file: file.path, field: field(key), reason: "missing; a losad sparse model file has it")
        }
        return value
    }

    func string(_ key: String) throws -> String {
        let value = try value(key)
        guard case .string(let text) = value else {
            throw ModelFormatError.invalid(file: file.path, field: field(key), reason: "a \(value.type) where a string is expected")
        }
        return text
    }

    func uint32(_ key: String) throws -> UInt32 {
        let value = try value(key)
        guard case .uint32(let number) = value else {
            throw ModelFormatError.invalid(file: file.path, field: field(key), reason: "a \(value.type) where a uint32 is expected")
        }
        return number
    }

    func array(_ key: String, of elementType: GGUFValueType) throws -> [GGUFValue] {
        let value = try value(key)
        guard case .array(let type, let values) = value, type == elementType else {
            let found = if case .array(let type, _) = value { "an array of \(type)" } else { "a \(value.type)" }
            throw ModelFormatError.invalid(file: file.path, field: field(key), reason: "\(found) where an array of \(elementType) is expected")
        }
        return values
    }
}
