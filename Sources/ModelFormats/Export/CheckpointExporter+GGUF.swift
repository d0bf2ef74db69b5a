import Kernels

extension CheckpointExporter {
    /// GGUF → GGUF: the source's metadata and tensor order, replaced tensors
    /// encoded, the others copied byte for byte (`GGUFWriter` streams both).
    static func exportGGUF(_ source: Checkpoint, file: GGUFFile, replacements: [TensorRole: any ReplacementValues], type: ExportTensorType,
                           metadata: GGUFMetadata, to path: String, replacingExisting: Bool) throws -> ExportResult {
        let fileName = splitPath(path).name
        // Values given whole are kept in the plan; produced ones are checked now and made again when written.
        enum Values { case given(Tensor), produced(@Sendable () throws -> Tensor) }
        var plan: [(info: GGUFTensorInfo, values: Values?, type: GGMLType, fallback: String?)] = []
        var elementsByType: [GGMLType: Int] = [:]
        let architecture = source.config.architecture
        for info in file.tensors {
            let placement = TensorPlacement(ggufName: info.name, architecture: architecture)
            guard let values = try source.replacedValues(of: info.name, placement: placement, replacements: replacements) else {
                plan.append((info, nil, info.type, nil))
                continue
            }
            let (stored, fallback) = type.ggufType(source: info.type, rowLength: info.dimensions.first ?? 1)
            try checkValues(values, name: info.name, storedAs: stored, file: path)
            if source.producesValues(of: info.name, placement: placement, replacements: replacements) {
                nonisolated(unsafe) let replacements = replacements
                let name = info.name
                plan.append((info, .produced { try source.replacedValues(of: name, placement: placement, replacements: replacements)! },
                             stored, fallback))
            } else {
                plan.append((info, .given(values), stored, fallback))
            }
            elementsByType[stored, default: 0] += info.elementCount
        }

        var combined = file.metadata
        for (key, value) in metadata.entries { combined[key] = value }
        // The type most replaced elements are stored in is what the file now mostly is.
        if let current = combined[fileTypeKey],
           let (mostly, _) = elementsByType.max(by: { ($0.value, $1.key.rawValue) < ($1.value, $0.key.rawValue) }),
           let fileType = llamaFileType(mostly) {
            combined[fileTypeKey] = sameIntegerType(as: current, fileType)
        }

        var writer = GGUFWriter(metadata: combined)
        var tensors: [ExportedTensor] = []
        for step in plan {
            if case .given(let values) = step.values {
                writer.addTensor(named: step.info.name, values, as: step.type)
            } else if case .produced(let make) = step.values {
                writer.addTensor(named: step.info.name, shape: step.info.shape, as: step.type, makingValues: make)
            } else {
                writer.addTensor(copying: step.info, from: file)
            }
            tensors.append(ExportedTensor(name: step.info.name, role: TensorPlacement(ggufName: step.info.name, architecture: architecture)?.role, shape: step.info.shape,
                                          sourceType: step.info.type.description, type: step.type.description,
                                          replaced: step.values != nil, fallback: step.fallback, file: fileName))
        }
        try writer.write(to: path, replacingExisting: replacingExisting)
        return ExportResult(path: path, format: .gguf, bytesWritten: fileSize(path), tensors: tensors,
                            copiedFiles: [], skippedFiles: [])
    }

    static let fileTypeKey = "general.file_type"

    /// llama.cpp's `llama_ftype` for the types an export writes.
    static func llamaFileType(_ type: GGMLType) -> Int? {
        switch type {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q8_0: return 7
        case .bf16: return 32
        default: return nil
        }
    }

    /// `value` in the integer type `existing` has, so readers that check the type still accept it.
    static func sameIntegerType(as existing: GGUFValue, _ value: Int) -> GGUFValue {
        switch existing {
        case .int32: return .int32(Int32(value))
        case .uint64: return .uint64(UInt64(value))
        case .int64: return .int64(Int64(value))
        default: return .uint32(UInt32(value))
        }
    }
}
