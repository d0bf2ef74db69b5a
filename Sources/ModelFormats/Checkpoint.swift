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

    /// One stored tensor as the file has it.
    public struct TensorEntry: Sendable {
        public let name: String
        /// What the decoder uses it for; nil for tensors losad ignores (e.g. rotary caches).
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
        var byRole: [TensorRole: TensorEntry] = [:]
        for entry in tensors {
            guard let role = entry.role else { continue }
            if byRole[role] != nil {
                throw ModelFormatError.invalid(file: path, field: "tensor '\(entry.name)'", reason: "a second tensor for the same role")
            }
            byRole[role] = entry
        }
        self.entryByRole = byRole
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
            guard let role = TensorRole(ggufName: info.name) else {
                throw ModelFormatError.unsupported(file: path, field: "tensor '\(info.name)'",
                                                   reason: "not a tensor of a \(config.architecture.rawValue) decoder")
            }
            return TensorEntry(name: info.name, role: role, type: info.type.description, shape: info.shape,
                               elementCount: info.elementCount, byteCount: info.byteCount)
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
                let role = TensorRole(huggingFaceName: info.name, architecture: config.architecture)
                if role == nil && !ignoredHuggingFaceSuffixes.contains(where: info.name.hasSuffix) {
                    throw ModelFormatError.unsupported(file: file.path, field: "tensor '\(info.name)'",
                                                       reason: "not a tensor of a \(config.architecture.rawValue) decoder")
                }
                entries.append(TensorEntry(name: info.name, role: role, type: info.dtype.description, shape: info.shape,
                                           elementCount: info.elementCount, byteCount: info.byteRange.count))
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

    /// The name `role` has in this checkpoint's naming (a sparse file keeps its source's).
    func tensorName(of role: TensorRole) -> String {
        let naming: Format
        if case .sparse(let file) = storage { naming = file.sourceFormat } else { naming = format }
        return naming == .huggingFace ? (role.huggingFaceName(in: config.architecture) ?? role.ggufName) : role.ggufName
    }

    /// The stored entry for `role`, if the checkpoint has one.
    public func entry(for role: TensorRole) -> TensorEntry? { entryByRole[role] }

    // MARK: - Loading

    /// The tensor for `role` converted to Float32 (row-major, the checkpoint's own q/k layout).
    public func tensor(_ role: TensorRole) throws -> Tensor {
        guard let entry = entryByRole[role] else {
            throw ModelFormatError.invalid(file: path, field: "tensor for \(role)", reason: "not in this checkpoint")
        }
        switch storage {
        case .gguf(let file): return try file.tensor(named: entry.name)
        case .huggingFace(let weights):
            let tensor = try weights.tensor(named: entry.name)
            if config.block.huggingFaceNormOffset && role.isNormWeight { Checkpoint.addOne(to: tensor) }
            return tensor
        case .sparse(let file):
            let tensor = try file.tensor(named: entry.name)
            if file.sourceFormat == .huggingFace && config.block.huggingFaceNormOffset && role.isNormWeight {
                Checkpoint.addOne(to: tensor)
            }
            return tensor
        }
    }

    /// w → 1 + w: a Hugging Face gemma norm weight as the engine (and GGUF) hold it.
    static func addOne(to tensor: Tensor) {
        for i in 0..<tensor.count { tensor.pointer[i] += 1 }
    }

    /// Every tensor the decoder uses, converted to Float32, by role.
    public func loadWeights() throws -> [TensorRole: Tensor] {
        var weights: [TensorRole: Tensor] = [:]
        for entry in tensors {
            guard let role = entry.role else { continue }
            weights[role] = try tensor(role)
        }
        return weights
    }
}
