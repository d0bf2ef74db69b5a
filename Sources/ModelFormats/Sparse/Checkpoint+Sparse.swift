import Foundation
import Kernels

/// Opening a sparse model file as a `Checkpoint`, and the in-place views a runtime reads instead of
/// Float32 copies: each sparse role's `SparseMatrix` and each dense tensor's GGUF bytes.
extension Checkpoint {
    /// A sparse model file (already parsed as GGUF) as a checkpoint: the source's configuration and
    /// tokenizer, the tensor table with sparse matrices at their logical shapes, checked against the config.
    static func openSparse(_ file: GGUFFile) throws -> Checkpoint {
        let sparse = try SparseModelFile(file: file)
        let path = file.path
        let config: ModelConfig
        let tokenizer: Tokenizer
        switch sparse.sourceFormat {
        case .huggingFace:
            // Errors point into the embedded document: "model.gguf [losa.sparse.huggingface.config_json]: key 'hidden_size' …".
            config = try ModelConfig(huggingFaceConfig: sparse.huggingFaceConfig!,
                                     file: "\(path) [\(SparseModelFormat.Key.huggingFaceConfig)]")
            tokenizer = try Tokenizer(tokenizerJSON: sparse.huggingFaceTokenizer!,
                                      file: "\(path) [\(SparseModelFormat.Key.huggingFaceTokenizer)]")
        default:
            let metadata = sparse.sourceMetadata
            do {
                config = try ModelConfig(ggufMetadata: metadata, tensorShapes: sparse.tensorShapes, file: path)
            } catch ModelFormatError.unsupported(let file, "metadata key 'general.architecture'", let reason) {
                // The family is read from general.architecture set back to it; the file has it under its own key.
                throw ModelFormatError.unsupported(file: file, field: "metadata key '\(SparseModelFormat.Key.architecture)'", reason: reason)
            }
            tokenizer = try Tokenizer(ggufMetadata: metadata, file: path)
        }
        if sparse.sourceFormat == .huggingFace, config.architecture.rawValue != sparse.family {
            throw ModelFormatError.invalid(file: path, field: "metadata key '\(SparseModelFormat.Key.architecture)'",
                                           reason: "'\(sparse.family)', but the embedded config.json says '\(config.architecture.rawValue)'")
        }
        let entries = try sparse.entries.compactMap { entry -> TensorEntry? in
            let name = entry.name
            let placement = sparse.sourceFormat == .huggingFace
                ? TensorPlacement(huggingFaceName: name, architecture: config.architecture)
                : TensorPlacement(ggufName: name, architecture: config.architecture)
            guard let placement else {
                if sparse.sourceFormat == .huggingFace, ignoredHuggingFaceSuffixes.contains(where: name.hasSuffix) { return nil }
                throw ModelFormatError.unsupported(file: path, field: "tensor '\(name)'",
                                                   reason: "not a tensor of a \(config.architecture.rawValue) decoder")
            }
            switch entry {
            case .sparse(let tensor):
                return try .placed(placement, name: name, type: SparseModelFormat.entryType(tensor.kind), shape: tensor.shape,
                                   elementCount: tensor.rows * tensor.cols, byteCount: tensor.storedByteCount,
                                   sparseKind: tensor.kind, config: config, file: path)
            case .dense(let info):
                return try .placed(placement, name: name, type: info.type.description, shape: info.shape,
                                   elementCount: info.elementCount, byteCount: info.byteCount, config: config, file: path)
            }
        }
        return try Checkpoint(path: path, format: .sparse, config: config, tokenizer: tokenizer, tensors: entries,
                              fileSize: file.fileSize, storage: .sparse(sparse))
    }

    // MARK: - In-place views

    /// The sparse model file behind this checkpoint; nil for a GGUF file or a Hugging Face folder.
    public var sparseFile: SparseModelFile? {
        if case .sparse(let file) = storage { return file }
        return nil
    }

    /// The sparse matrix stored for `role`, borrowed from the mapped file (no copy; a fused role's
    /// rows of its stored matrix); nil when the role is dense or this is not a sparse model file.
    public func sparseMatrix(for role: TensorRole) -> SparseMatrix? {
        guard let file = sparseFile, let entry = entry(for: role), let tensor = file.sparseTensor(named: entry.name) else { return nil }
        let matrix = file.matrix(tensor)
        return entry.rows.map { matrix.rows($0) } ?? matrix
    }

    /// Every sparse role's matrix, borrowed from the mapped file.
    public func sparseMatrices() -> [TensorRole: SparseMatrix] {
        var matrices: [TensorRole: SparseMatrix] = [:]
        for entry in roleEntries where entry.sparseKind != nil {
            if let role = entry.role, let matrix = sparseMatrix(for: role) { matrices[role] = matrix }
        }
        return matrices
    }

    /// A dense tensor's bytes as stored in a GGUF or sparse model file, in place (for runtimes that
    /// read Q8_0, Q4_K … blocks directly; for a fused role, its whole stored tensor: the role's rows are
    /// `entry(for:).rows`); nil for a sparse matrix, a missing role or a Hugging Face folder.
    public func storedTensor(for role: TensorRole) -> StoredGGUFTensor? {
        guard let entry = entry(for: role), entry.sparseKind == nil else { return nil }
        let file: GGUFFile
        switch storage {
        case .gguf(let gguf): file = gguf
        case .sparse(let sparse): file = sparse.file
        case .huggingFace: return nil
        }
        guard let info = file.tensorInfo(named: entry.name) else { return nil }
        return StoredGGUFTensor(info: info, file: file)
    }
}

/// One tensor of a mapped GGUF file, its bytes borrowed in place (`GGUFFile.rawBytes(of:)`).
public struct StoredGGUFTensor: @unchecked Sendable {
    // @unchecked: `bytes` points into `file`'s mapping, which this value keeps alive.
    /// Name, ggml type and dimensions (ggml order; `info.shape` is row-major).
    public let info: GGUFTensorInfo
    /// The file the bytes live in (kept alive by this value).
    public let file: GGUFFile

    /// The stored bytes (`info.byteCount` of them), valid while this value or `file` lives.
    public var bytes: UnsafeRawBufferPointer { file.rawBytes(of: info) }
}
