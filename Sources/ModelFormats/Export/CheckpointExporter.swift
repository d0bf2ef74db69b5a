#if canImport(Glibc)
import Glibc
#endif
import Kernels

extension Checkpoint {
    /// Writes this checkpoint with `replacements` in place of its tensors, in
    /// the source's format: what a compression job hands to the user.
    ///
    /// - GGUF → one `.gguf` file at `path`: every metadata pair copied in
    ///   order, `metadata` (`losa.*` keys only) added, `general.file_type`
    ///   updated to the type most replaced elements are stored in; every other
    ///   tensor copied byte for byte in its own type.
    /// - Hugging Face folder → a folder at `path`: the weights as safetensors,
    ///   in the source's files under the source's names (sharded like it, with
    ///   an index when it had one), each file's `__metadata__` kept with
    ///   `metadata` added as strings; every other tensor copied byte for byte;
    ///   config.json, tokenizer and generation files and every other non-weight
    ///   file copied (see `HuggingFaceFolderCopy` for what is left out).
    ///
    /// Replaced tensors (by role; Float32, the checkpoint's own row-major
    /// layout and shape, e.g. the pruned projections of every layer) are stored
    /// as `type` chooses per tensor; see `ExportTensorType`.
    ///
    /// Everything is checked before anything is written: roles and shapes,
    /// values (finite and within the chosen type's range), the type against
    /// the format, the metadata keys, and the path (its folder exists, it does
    /// not exist unless `replacingExisting`, it is neither the source nor
    /// inside it nor around it). The output is written under a temporary name
    /// in the destination folder, fsynced and renamed into place; on error
    /// nothing is left behind and the source is never touched.
    ///
    /// - Parameters:
    ///   - replacements: Float32 tensors by role, each shaped as the source's entry.
    ///   - type: how to store replaced tensors; `.q8_0` and `.q4_0` are GGUF only.
    ///   - metadata: `losa.*` keys to add (e.g. sparsity, method, source hash).
    ///   - path: the `.gguf` file (GGUF source) or the folder (Hugging Face source) to create.
    ///   - replacingExisting: replace an existing output at `path`.
    @discardableResult
    public func export(replacing replacements: [TensorRole: any ReplacementValues], as type: ExportTensorType = .auto,
                       metadata: GGUFMetadata = GGUFMetadata(), to path: String,
                       replacingExisting: Bool = false) throws -> ExportResult {
        let output = AtomicOutputFolder.trimmingTrailingSlashes(path)
        try CheckpointExporter.checkOutputPath(output, source: self, replacingExisting: replacingExisting)
        try CheckpointExporter.checkMetadata(metadata, file: output)
        try CheckpointExporter.checkReplacements(replacements, source: self, file: output)
        switch storage {
        case .gguf(let file):
            return try CheckpointExporter.exportGGUF(self, file: file, replacements: replacements, type: type,
                                                     metadata: metadata, to: output, replacingExisting: replacingExisting)
        case .huggingFace(let weights):
            return try CheckpointExporter.exportHuggingFace(self, weights: weights, replacements: replacements, type: type,
                                                            metadata: metadata, to: output, replacingExisting: replacingExisting)
        case .sparse:
            throw ModelFormatError.unsupported(file: path, field: "export source \(self.path)",
                                               reason: "a sparse model file is an output; export from the model it was made from")
        }
    }
}

extension Checkpoint {
    /// The values a writer stores for the stored tensor `name`: the replacement of its role, or, for a
    /// fused tensor (phi3), its parts' replacements stacked in its rows (a part not replaced keeps the
    /// source's rows); nil when nothing of it is replaced, so it is copied as stored.
    /// Whether any replacement the tensor `name` takes is made on demand (`ReplacementValues.isProduced`).
    func producesValues(of name: String, placement: TensorPlacement?, replacements: [TensorRole: any ReplacementValues]) -> Bool {
        switch placement {
        case .role(let role)?: return replacements[role]?.isProduced ?? false
        case .fused?: return tensors.first { $0.name == name }?.parts.contains { replacements[$0.role]?.isProduced ?? false } ?? false
        case nil: return false
        }
    }

    func replacedValues(of name: String, placement: TensorPlacement?, replacements: [TensorRole: any ReplacementValues]) throws -> Tensor? {
        switch placement {
        case .role(let role)?:
            return try replacements[role]?.values()
        case .fused?:
            guard let entry = tensors.first(where: { $0.name == name }),
                  entry.parts.contains(where: { replacements[$0.role] != nil }) else { return nil }
            let values = entry.parts.allSatisfy({ replacements[$0.role] != nil }) ? Tensor(zeros: entry.shape)
                : try storedValues(named: name)
            for part in entry.parts {
                if let replacement = replacements[part.role] { values.slice(part.rows).assign(try replacement.values()) }
            }
            return values
        case nil:
            return nil
        }
    }
}

/// The checks and the two writers behind `Checkpoint.export`.
enum CheckpointExporter {
    /// The prefix of every key an export adds; the rest is the source's.
    static let metadataPrefix = "losa."

    // MARK: - Checks

    static func checkOutputPath(_ path: String, source: Checkpoint, replacingExisting: Bool) throws {
        let (directory, name) = splitPath(path)
        guard !name.isEmpty, name != ".", name != ".." else {
            throw ModelFormatError.io(file: path, operation: "export", reason: "the path names no new file or folder")
        }
        if source.format == .gguf && !name.hasSuffix(".gguf") {
            throw ModelFormatError.io(file: path, operation: "export",
                                      reason: "a GGUF checkpoint is exported as a .gguf file; the path must end in .gguf")
        }
        var status = stat()
        guard stat(directory, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else {
            throw ModelFormatError.io(file: path, operation: "export", reason: "its folder \(directory) does not exist")
        }
        if AtomicOutputFolder.exists(path) {
            guard replacingExisting else {
                throw ModelFormatError.io(file: path, operation: "export",
                                          reason: "it already exists (losad replaces an output only when asked)")
            }
            if source.format == .gguf && stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR {
                throw ModelFormatError.io(file: path, operation: "export", reason: "it is a folder; a GGUF export replaces only a file")
            }
        }
        // Compare real locations: the output (its folder resolved, its own name
        // kept, since a link at that name is what gets replaced) against the source.
        guard let input = realPath(source.path), let folder = realPath(directory) else {
            throw ModelFormatError.io(file: path, operation: "export", reason: "cannot resolve \(source.path) or \(directory)")
        }
        let target = (folder == "/" ? "" : folder) + "/" + name
        if target == input || target.hasPrefix(input + "/") || input.hasPrefix(target + "/") {
            throw ModelFormatError.io(file: path, operation: "export",
                                      reason: "it is, lies inside or contains the source \(source.path), which an export never touches")
        }
    }

    static func checkMetadata(_ metadata: GGUFMetadata, file: String) throws {
        for key in metadata.keys where !key.hasPrefix(metadataPrefix) || key.count == metadataPrefix.count {
            throw ModelFormatError.invalid(file: file, field: "metadata key '\(key)'",
                                           reason: "an export adds only \(metadataPrefix)* keys; every other key is the source's")
        }
    }

    /// Every role is the source's, every shape the source's.
    static func checkReplacements(_ replacements: [TensorRole: any ReplacementValues], source: Checkpoint, file: String) throws {
        for (role, tensor) in replacements {
            guard let entry = source.entry(for: role) else {
                let name = source.tensorName(of: role)
                throw ModelFormatError.invalid(file: file, field: "replacement tensor '\(name)'",
                                               reason: "the source \(source.path) has no such tensor")
            }
            guard tensor.shape == entry.shape else {
                throw ModelFormatError.invalid(file: file, field: "replacement tensor '\(entry.name)'",
                                               reason: "shape \(tensor.shape) where the source's is \(entry.shape)")
            }
        }
    }

    /// Values must be finite and fit `type` (see `ExportTensorType.largestMagnitude`):
    /// an overflow would turn a weight, or a whole block's zeros, into inf or NaN.
    static func checkValues(_ tensor: Tensor, name: String, storedAs type: GGMLType, file: String) throws {
        let limit = ExportTensorType.largestMagnitude(of: type)
        try tensor.withUnsafeBufferPointer { values in
            for (index, value) in values.enumerated() where !(abs(value) <= limit) {
                let reason = value.isFinite
                    ? "element \(index) is \(value); \(type) stores magnitudes up to \(limit)"
                    : "element \(index) is \(value)"
                throw ModelFormatError.invalid(file: file, field: "replacement tensor '\(name)'", reason: reason)
            }
        }
    }

    // MARK: - Helpers

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func fileSize(_ path: String) -> Int {
        var status = stat()
        return stat(path, &status) == 0 ? Int(status.st_size) : 0
    }
}
