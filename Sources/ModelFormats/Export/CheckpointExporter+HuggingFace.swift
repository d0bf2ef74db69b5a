import Kernels

extension CheckpointExporter {
    /// Hugging Face folder → Hugging Face folder: the source's safetensors
    /// files under their own names, each with its tensors (replaced ones in the
    /// chosen dtype, the others copied byte for byte) and its `__metadata__`
    /// plus the export's keys; the index when the source had one; every other
    /// non-weight file copied. All of it in a temporary sibling folder that is
    /// renamed into place (`AtomicOutputFolder`).
    static func exportHuggingFace(_ source: Checkpoint, weights: SafetensorsCheckpoint, replacements: [TensorRole: any ReplacementValues],
                                  type: ExportTensorType, metadata: GGUFMetadata, to path: String,
                                  replacingExisting: Bool) throws -> ExportResult {
        guard type.ggmlType == nil || type.safetensorsDType != nil else {
            throw ModelFormatError.unsupported(file: path, field: "tensor type \(type)",
                                               reason: "safetensors has no \(type) blocks; export a Hugging Face folder as auto, f16, bf16 or f32")
        }
        let addedMetadata = try safetensorsMetadata(metadata, file: path)

        // Plan every file and check every value before the folder exists.
        struct PlannedFile {
            var name: String
            var entries: [SafetensorsWriter.Entry]
            var metadata: [String: String]
        }
        var files: [PlannedFile] = []
        var tensors: [ExportedTensor] = []
        var weightMap: [String: String] = [:]
        var totalSize = 0
        for file in weights.files {
            let name = splitPath(file.path).name
            var entries: [SafetensorsWriter.Entry] = []
            for info in file.tensors {
                let placement = TensorPlacement(huggingFaceName: info.name, architecture: source.config.architecture)
                let role = placement?.role
                let replacement = try source.replacedValues(of: info.name, placement: placement, replacements: replacements)
                var stored = info.dtype
                if let replacement {
                    // Non-nil: the block types were refused above.
                    stored = type.safetensorsDType(source: info.dtype)!
                    try checkValues(replacement, name: info.name, storedAs: ggmlType(of: stored), file: path)
                    entries.append(SafetensorsWriter.Entry(name: info.name, tensor: replacement, dtype: stored))
                } else {
                    entries.append(try SafetensorsWriter.Entry(copying: info.name, from: file))
                }
                tensors.append(ExportedTensor(name: info.name, role: role, shape: info.shape, sourceType: info.dtype.description,
                                              type: stored.description, replaced: replacement != nil, fallback: nil, file: name))
                weightMap[info.name] = name
                totalSize += stored.byteCount(elements: info.elementCount) ?? 0
            }
            var fileMetadata = file.metadata
            for (key, value) in addedMetadata { fileMetadata[key] = value }
            // transformers refuses safetensors metadata without a known "format"; the source's is kept when it has one.
            if fileMetadata["format"] == nil { fileMetadata["format"] = "pt" }
            files.append(PlannedFile(name: name, entries: entries, metadata: fileMetadata))
        }
        let indexName = weights.indexPath.map { splitPath($0).name }
        let ownWeightFiles = Set(files.map(\.name) + (indexName.map { [$0] } ?? []))
        let copy = try HuggingFaceFolderCopy(folder: source.path, excluding: ownWeightFiles)

        let bytesWritten = try AtomicOutputFolder.write(to: path, replacingExisting: replacingExisting) { folder in
            var bytes = 0
            for file in files {
                let filePath = folder + "/" + file.name
                try SafetensorsWriter.write(file.entries, metadata: file.metadata, to: filePath)
                bytes += fileSize(filePath)
            }
            if let indexName {
                let index = Array(SafetensorsWriter.indexJSON(totalSize: totalSize, weightMap: weightMap).utf8)
                try AtomicOutputFile.write(to: folder + "/" + indexName, replacingExisting: false) { try $0.write(index) }
                bytes += index.count
            }
            bytes += try copy.copy(into: folder)
            return bytes
        }
        return ExportResult(path: path, format: .huggingFace, bytesWritten: bytesWritten, tensors: tensors,
                            copiedFiles: copy.files, skippedFiles: copy.skipped)
    }

    /// The export's keys as safetensors metadata strings: strings as they are,
    /// numbers in decimal (shortest round-trip form), booleans as true/false.
    static func safetensorsMetadata(_ metadata: GGUFMetadata, file: String) throws -> [String: String] {
        var strings: [String: String] = [:]
        for (key, value) in metadata.entries {
            switch value {
            case .string(let text): strings[key] = text
            case .bool(let flag): strings[key] = flag ? "true" : "false"
            case .float32(let number): strings[key] = "\(number)"
            case .float64(let number): strings[key] = "\(number)"
            case .array:
                throw ModelFormatError.unsupported(file: file, field: "metadata key '\(key)'",
                                                   reason: "safetensors metadata holds strings; give an array as a string")
            case .uint64(let number): strings[key] = "\(number)"
            default: strings[key] = value.intValue.map { "\($0)" } ?? "\(value)"
            }
        }
        return strings
    }

    /// The ggml type with the same range, for `checkValues`.
    private static func ggmlType(of dtype: SafetensorsDType) -> GGMLType {
        switch dtype {
        case .f16: return .f16
        case .bf16: return .bf16
        default: return .f32
        }
    }
}
