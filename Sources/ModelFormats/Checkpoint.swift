#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Kernels

/// A model as a user drops it — a GGUF file or a Hugging Face folder
/// (config.json, *.safetensors, tokenizer.json) — described in one shape:
/// its `ModelConfig`, its tensors by role, and its tokenizer.
///
/// Loading is a visible pipeline: open the files → map names to roles →
/// check every expected tensor is present with the shape the config implies
/// and nothing unknown is left over → convert to Float32.
public final class Checkpoint: @unchecked Sendable {
    public enum Format: String, Sendable, Codable {
        case gguf
        case huggingFace = "huggingface"
        /// losad's sparse model file (docs/sparse-format.md, "The model file"): a GGUF container
        /// keeping its source's names and configuration; see `Checkpoint.sparseFile`.
        case sparse = "losa-sparse"
    }

    /// One stored tensor as the file has it (in `tensors`), or one role's share of it (`entry(for:)`,
    /// `roleEntries`): the same entry for an unfused tensor, its rows of a fused one (phi3).
    public struct TensorEntry: Sendable {
        public let name: String
        /// What the decoder uses it for; nil for tensors losad ignores (e.g. rotary caches) and for a
        /// fused tensor, whose roles are its `parts`.
        public let role: TensorRole?
        /// Storage type as the format names it (GGUF "Q4_1", safetensors "BF16").
        public let type: String
        /// Row-major shape.
        public let shape: [Int]
        public let elementCount: Int
        /// Bytes stored (for a sparse matrix: its mask, offsets, values and scales together).
        public let byteCount: Int
        /// How a sparse matrix stores its values; nil for a dense tensor.
        public var sparseKind: SparseValueKind? = nil
        /// A fused tensor's roles, each with its rows, in stored order (phi3's q/k/v and gate/up); empty otherwise.
        public var parts: [(role: TensorRole, rows: Range<Int>)] = []
        /// A role's share of a fused tensor: the rows of the stored tensor `name` that are the role's;
        /// nil when the role is the whole stored tensor.
        public var rows: Range<Int>? = nil

        /// Whether the decoder reads it (as one role or as the parts of a fused tensor).
        public var isUsed: Bool { role != nil || !parts.isEmpty }

        /// The entry of a stored tensor `name` of the decoder: its role, or, fused, its parts' rows
        /// (the stored shape checked against the one `config` implies, which the split depends on).
        static func placed(_ placement: TensorPlacement, name: String, type: String, shape: [Int], elementCount: Int,
                           byteCount: Int, sparseKind: SparseValueKind? = nil, config: ModelConfig, file: String) throws -> TensorEntry {
            switch placement {
            case .role(let role):
                return TensorEntry(name: name, role: role, type: type, shape: shape, elementCount: elementCount,
                                   byteCount: byteCount, sparseKind: sparseKind)
            case .fused(let layer, let fused):
                guard layer < config.layerCount else {
                    throw ModelFormatError.invalid(file: file, field: "tensor '\(name)'",
                                                   reason: "left over: the config has \(config.layerCount) layers")
                }
                let expected = fused.shape(in: config)
                guard shape == expected else {
                    throw ModelFormatError.invalid(file: file, field: "tensor '\(name)'",
                                                   reason: "shape \(shape) where the config implies \(expected) (\(fused.members.map(\.rawValue).joined(separator: ", ")) stacked)")
                }
                let parts = zip(fused.members, fused.rowRanges(in: config)).map { (role: TensorRole.layer(layer, $0), rows: $1) }
                return TensorEntry(name: name, role: nil, type: type, shape: shape, elementCount: elementCount,
                                   byteCount: byteCount, sparseKind: sparseKind, parts: parts)
            }
        }

        /// Each part's own entry: this tensor's name and type, the part's rows, shape and share of the bytes.
        var partEntries: [TensorEntry] {
            parts.map { part in
                let rowLength = shape.dropFirst().reduce(1, *)
                return TensorEntry(name: name, role: part.role, type: type, shape: [part.rows.count] + shape.dropFirst(),
                                   elementCount: part.rows.count * rowLength, byteCount: byteCount * part.rows.count / shape[0],
                                   sparseKind: sparseKind, rows: part.rows)
            }
        }
    }

    enum Storage {
        case gguf(GGUFFile)
        case huggingFace(SafetensorsCheckpoint)
        case sparse(SparseModelFile)
    }

    public let path: String
    public let format: Format
    public let config: ModelConfig
    public let tokenizer: Tokenizer
    public let tensors: [TensorEntry]
    /// Bytes on disk of every file the model consists of.
    public let fileSize: Int
    let storage: Storage
    private let entryByRole: [TensorRole: TensorEntry]
    /// Every role's entry, in stored order (a fused tensor's parts in its row order).
    public let roleEntries: [TensorEntry]

    /// Names Hugging Face checkpoints may carry that hold no weights losad needs.
    static let ignoredHuggingFaceSuffixes = [".rotary_emb.inv_freq"]

    /// Opens a `.gguf` file or a Hugging Face folder and validates its tensors against its config.
    public static func open(_ path: String) throws -> Checkpoint {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelFormatError.io(file: path, operation: "open", reason: "no such file or folder")
        }
        if isDirectory.boolValue { return try openHuggingFace(folder: path) }
        return try openGGUF(path)
    }

    init(path: String, format: Format, config: ModelConfig, tokenizer: Tokenizer,
                 tensors: [TensorEntry], fileSize: Int, storage: Storage) throws {
        self.path = path
        self.format = format
        self.config = config
        self.tokenizer = tokenizer
        self.tensors = tensors
        self.fileSize = fileSize
        self.storage = storage
        var byRole: [TensorRole: TensorEntry] = [:], roleEntries: [TensorEntry] = []
        for entry in tensors.flatMap({ $0.role != nil ? [$0] : $0.partEntries }) {
            if let other = byRole[entry.role!] {
                throw ModelFormatError.invalid(file: path, field: "tensor '\(entry.name)'",
                                               reason: "a second tensor for the same role (\(other.name) holds it)")
            }
            byRole[entry.role!] = entry
            roleEntries.append(entry)
        }
        self.entryByRole = byRole
        self.roleEntries = roleEntries
        try validateShapes()
    }

    private static func openGGUF(_ path: String) throws -> Checkpoint {
        try openGGUF(file: try GGUFFile(path: path))
    }

    /// A parsed GGUF file as a checkpoint: a sparse model file when its architecture says so.
    static func openGGUF(file: GGUFFile) throws -> Checkpoint {
        if SparseModelFile.isSparse(file) { return try openSparse(file) }
        let path = file.path
        let metadata = file.metadata.dictionary
        let config = try ModelConfig(ggufMetadata: metadata, tensorShapes: file.tensorShapes, file: path)
        let tokenizer = try Tokenizer(ggufMetadata: metadata, file: path)
        let entries = try file.tensors.map { info -> TensorEntry in
            guard let placement = TensorPlacement(ggufName: info.name, architecture: config.architecture) else {
                throw ModelFormatError.unsupported(file: path, field: "tensor '\(info.name)'",
                                                   reason: "not a tensor of a \(config.architecture.rawValue) decoder")
            }
            return try .placed(placement, name: info.name, type: info.type.description, shape: info.shape,
                               elementCount: info.elementCount, byteCount: info.byteCount, config: config, file: path)
        }
        return try Checkpoint(path: path, format: .gguf, config: config, tokenizer: tokenizer, tensors: entries,
                              fileSize: file.fileSize, storage: .gguf(file))
    }

    private static func openHuggingFace(folder: String) throws -> Checkpoint {
        let configPath = (folder as NSString).appendingPathComponent("config.json")
        let tokenizerPath = (folder as NSString).appendingPathComponent("tokenizer.json")
        guard let configData = FileManager.default.contents(atPath: configPath) else {
            throw ModelFormatError.io(file: configPath, operation: "read", reason: "a Hugging Face model folder needs config.json")
        }
        guard FileManager.default.fileExists(atPath: tokenizerPath) else {
            throw ModelFormatError.io(file: tokenizerPath, operation: "read", reason: "a Hugging Face model folder needs tokenizer.json")
        }
        let config = try ModelConfig(huggingFaceConfig: configData, file: configPath)
        let tokenizer = try Tokenizer(tokenizerJSONAt: tokenizerPath)
        let weights = try SafetensorsCheckpoint(path: folder)
        var entries: [TensorEntry] = []
        var size = configData.count + fileSize(tokenizerPath)
        if let index = weights.indexPath { size += fileSize(index) }
        for file in weights.files {
            size += fileSize(file.path)
            for info in file.tensors {
                guard let placement = TensorPlacement(huggingFaceName: info.name, architecture: config.architecture) else {
                    guard ignoredHuggingFaceSuffixes.contains(where: info.name.hasSuffix) else {
                        throw ModelFormatError.unsupported(file: file.path, field: "tensor '\(info.name)'",
                                                           reason: "not a tensor of a \(config.architecture.rawValue) decoder")
                    }
                    entries.append(TensorEntry(name: info.name, role: nil, type: info.dtype.description, shape: info.shape,
                                               elementCount: info.elementCount, byteCount: info.byteRange.count))
                    continue
                }
                entries.append(try .placed(placement, name: info.name, type: info.dtype.description, shape: info.shape,
                                           elementCount: info.elementCount, byteCount: info.byteRange.count,
                                           config: config, file: file.path))
            }
        }
        return try Checkpoint(path: folder, format: .huggingFace, config: config, tokenizer: tokenizer,
                              tensors: entries, fileSize: size, storage: .huggingFace(weights))
    }

    private static func fileSize(_ path: String) -> Int {
        var status = stat()
        return stat(path, &status) == 0 ? Int(status.st_size) : 0
    }

    // MARK: - Roles and shapes

    /// The tensors a decoder of `config` needs, with their row-major shapes.
    public static func expectedShapes(for config: ModelConfig) -> [TensorRole: [Int]] {
        let c = config.hiddenSize, q = config.headCount * config.headDim, kv = config.kvHeadCount * config.headDim
        var shapes: [TensorRole: [Int]] = [
            .tokenEmbedding: [config.vocabSize, c],
            .outputNorm: [c],
        ]
        if !config.tiedEmbeddings { shapes[.output] = [config.vocabSize, c] }
        for layer in 0..<config.layerCount {
            shapes[.layer(layer, .attentionNorm)] = [c]
            shapes[.layer(layer, .query)] = [q, c]
            shapes[.layer(layer, .key)] = [kv, c]
            shapes[.layer(layer, .value)] = [kv, c]
            shapes[.layer(layer, .attentionOutput)] = [c, q]
            shapes[.layer(layer, .ffnNorm)] = [c]
            shapes[.layer(layer, .gate)] = [config.ffnSize, c]
            shapes[.layer(layer, .up)] = [config.ffnSize, c]
            shapes[.layer(layer, .down)] = [c, config.ffnSize]
            if config.block.queryKeyNorm {
                shapes[.layer(layer, .queryNorm)] = [config.headDim]
                shapes[.layer(layer, .keyNorm)] = [config.headDim]
            }
            if config.block.postSublayerNorms {
                shapes[.layer(layer, .attentionPostNorm)] = [c]
                shapes[.layer(layer, .ffnPostNorm)] = [c]
            }
            if config.attentionBias {
                shapes[.layer(layer, .queryBias)] = [q]
                shapes[.layer(layer, .keyBias)] = [kv]
                shapes[.layer(layer, .valueBias)] = [kv]
            }
        }
        return shapes
    }

    private func validateShapes() throws {
        let expected = Checkpoint.expectedShapes(for: config)
        for (role, shape) in expected {
            guard let entry = entryByRole[role] else {
                throw ModelFormatError.invalid(file: path, field: "tensor '\(tensorName(of: role))'", reason: "missing; the config describes it")
            }
            guard entry.shape == shape else {
                throw ModelFormatError.invalid(file: path, field: "tensor '\(entry.name)'",
                                               reason: "shape \(entry.shape) where the config implies \(shape)")
            }
        }
        for entry in tensors {
            guard let role = entry.role, expected[role] == nil else { continue }
            switch role {
            case .output where config.tiedEmbeddings:
                // Tied checkpoints may still store the head; it must then be the embedding's shape.
                guard entry.shape == [config.vocabSize, config.hiddenSize] else {
                    throw ModelFormatError.invalid(file: path, field: "tensor '\(entry.name)'", reason: "shape \(entry.shape) is not the embedding's")
                }
            case .ropeFrequencies:
                guard entry.shape == [config.headDim / 2] else {
                    throw ModelFormatError.invalid(file: path, field: "tensor '\(entry.name)'", reason: "shape \(entry.shape) where \([config.headDim / 2]) is expected")
                }
            default:
                throw ModelFormatError.invalid(file: path, field: "tensor '\(entry.name)'",
                                               reason: "left over: the config (\(config.layerCount) layers, bias \(config.attentionBias)) has no place for it")
            }
        }
    }

    /// The name of the tensor that holds `role` in this checkpoint's naming (a sparse file keeps its
    /// source's; a fused role is held by its fused tensor).
    func tensorName(of role: TensorRole) -> String {
        if let entry = entryByRole[role] { return entry.name }
        let naming: Format
        if case .sparse(let file) = storage { naming = file.sourceFormat } else { naming = format }
        let placement = TensorPlacement.storing(role, in: config.architecture)
        return naming == .huggingFace ? (placement.huggingFaceName(in: config.architecture) ?? placement.ggufName) : placement.ggufName
    }

    /// The stored entry for `role`, if the checkpoint has one.
    public func entry(for role: TensorRole) -> TensorEntry? { entryByRole[role] }

    // MARK: - Loading

    /// The tensor for `role` converted to Float32 (row-major, the checkpoint's own q/k layout; a
    /// fused role's rows copied out of its stored tensor).
    public func tensor(_ role: TensorRole) throws -> Tensor {
        guard let entry = entryByRole[role] else {
            throw ModelFormatError.invalid(file: path, field: "tensor for \(role)", reason: "not in this checkpoint")
        }
        let stored = try storedValues(named: entry.name)
        if let rows = entry.rows { return stored.slice(rows).copy() }
        let naming: Format
        if case .sparse(let file) = storage { naming = file.sourceFormat } else { naming = format }
        if naming == .huggingFace && config.block.huggingFaceNormOffset && role.isNormWeight { Checkpoint.addOne(to: stored) }
        return stored
    }

    /// The stored tensor `name` converted to Float32, as the file holds it (a fused tensor whole).
    func storedValues(named name: String) throws -> Tensor {
        switch storage {
        case .gguf(let file): return try file.tensor(named: name)
        case .huggingFace(let weights): return try weights.tensor(named: name)
        case .sparse(let file): return try file.tensor(named: name)
        }
    }

    /// w → 1 + w: a Hugging Face gemma norm weight as the engine (and GGUF) hold it.
    static func addOne(to tensor: Tensor) {
        for i in 0..<tensor.count { tensor.pointer[i] += 1 }
    }

    /// Every tensor the decoder uses, converted to Float32 into memory of its own (never a view of the file), by role.
    public func loadWeights() throws -> [TensorRole: Tensor] {
        var weights: [TensorRole: Tensor] = [:]
        for entry in tensors {
            if let role = entry.role {
                weights[role] = try tensor(role)
            } else if !entry.parts.isEmpty {
                // A fused tensor is converted once and each part's rows copied out.
                let stored = try storedValues(named: entry.name)
                for part in entry.parts { weights[part.role] = stored.slice(part.rows).copy() }
            }
        }
        return weights
    }
}
