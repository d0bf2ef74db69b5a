/// What `Checkpoint.export` wrote.
public struct ExportResult: Sendable, Equatable {
    /// The output: the `.gguf` file or the Hugging Face folder, in place.
    public let path: String
    /// The output's format, always the source's.
    public let format: Checkpoint.Format
    /// Bytes of every file written: the GGUF file, or the folder's weights,
    /// index and copied files.
    public let bytesWritten: Int
    /// Every tensor of the output, in the source's order (for a sharded
    /// folder: shard by shard, each in its file order).
    public let tensors: [ExportedTensor]
    /// Files copied unchanged into the folder, relative to it (config.json,
    /// tokenizer files, …); empty for GGUF.
    public let copiedFiles: [String]
    /// Files of the source folder not carried over, relative to it: weights
    /// in other formats (which would be stale dense copies), hidden entries
    /// and special files; empty for GGUF.
    public let skippedFiles: [String]

    /// Tensors written from the caller's values.
    public var replacedCount: Int { tensors.count(where: \.replaced) }
    /// Tensors copied byte for byte from the source.
    public var copiedCount: Int { tensors.count(where: { !$0.replaced }) }
    /// Replaced tensors stored in another type than the one asked for, with the reason.
    public var fallbacks: [ExportedTensor] { tensors.filter { $0.fallback != nil } }
}

/// One tensor of an export: where it came from and how it was stored.
public struct ExportedTensor: Sendable, Equatable {
    /// The tensor's name in the file (the source's name).
    public let name: String
    /// Its role, nil for tensors losad does not use (copied unchanged) and for a fused tensor (phi3's
    /// q/k/v, gate/up: replaced when any of its roles is).
    public let role: TensorRole?
    /// Row-major shape.
    public let shape: [Int]
    /// The source's storage type, as the format names it ("Q4_1", "BF16").
    public let sourceType: String
    /// The type written ("Q8_0", "F16", …); the source type for a copy.
    public let type: String
    /// Written from the caller's values rather than copied.
    public let replaced: Bool
    /// Why a replaced tensor is not stored in the requested type (e.g. its
    /// rows are not whole blocks); nil when it is.
    public let fallback: String?
    /// Output file holding it, relative to the output folder (the shard's
    /// name); the file name itself for GGUF.
    public let file: String
}
