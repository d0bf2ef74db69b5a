import Kernels

extension TensorRole {
    /// Whether the decoder multiplies (or looks rows up in) this tensor: the seven projections, the
    /// embedding and the head — the tensors a runtime may keep compressed.
    public var isMatrix: Bool {
        switch self {
        case .tokenEmbedding, .output: return true
        case .layer(_, let tensor):
            switch tensor {
            case .query, .key, .value, .attentionOutput, .gate, .up, .down: return true
            default: return false
            }
        default: return false
        }
    }
}

extension Checkpoint {
    /// The matrices a runtime can multiply where they are stored, borrowed from the mapped file (no
    /// copy): a sparse model file's sparse tensors, and every projection, embedding and head stored in
    /// a GGML block type with a product kernel (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K). Other roles are absent:
    /// load them as Float32 (`tensor(_:)`).
    public func inPlaceMatrices() throws -> [TensorRole: any CompressedMatrix] {
        var matrices: [TensorRole: any CompressedMatrix] = sparseMatrices()
        for entry in roleEntries {
            guard let role = entry.role, role.isMatrix, matrices[role] == nil, entry.shape.count == 2,
                  let stored = storedTensor(for: role),
                  let type = QuantizedBlockType(ggmlTypeID: Int32(stored.info.type.rawValue)) else { continue }
            var bytes = stored.bytes
            if let rows = entry.rows {
                // Blocks run along rows, so a fused tensor's rows are a byte range of whole rows.
                let rowBytes = bytes.count / stored.info.shape[0]
                bytes = UnsafeRawBufferPointer(rebasing: bytes[(rows.lowerBound * rowBytes)..<(rows.upperBound * rowBytes)])
            }
            guard let base = bytes.baseAddress else { continue }
            matrices[role] = try QuantizedMatrix(type: type, rows: entry.shape[0], cols: entry.shape[1], base: base,
                                                 byteCount: bytes.count, owner: stored.file, name: entry.name,
                                                 mappedFile: stored.file.isMapped)
        }
        return matrices
    }
}

extension Checkpoint {
    /// The seven projections of every layer as matrices decoded where the file holds them: the in-place ones
    /// (`inPlaceMatrices`: quantised blocks), and those stored as F32, F16 or BF16 (`StoredFloatMatrix`), in a GGUF
    /// file or a Hugging Face folder, a fused tensor's rows included. What a compression job reads one layer at a
    /// time instead of a Float32 copy; roles stored otherwise are absent.
    public func decodableProjections() throws -> [TensorRole: any CompressedMatrix] {
        let inPlace = try inPlaceMatrices()
        var matrices: [TensorRole: any CompressedMatrix] = [:]
        for entry in roleEntries {
            guard let role = entry.role, case .layer(_, let tensor) = role, entry.shape.count == 2 else { continue }
            switch tensor {
            case .query, .key, .value, .attentionOutput, .gate, .up, .down: break
            default: continue
            }
            if let matrix = inPlace[role] {
                matrices[role] = matrix
                continue
            }
            let bytes: UnsafeRawBufferPointer, element: StoredFloatMatrix.Element, owner: AnyObject, mapped: Bool
            switch storage {
            case .gguf(let file):
                guard let info = file.tensorInfo(named: entry.name) else { continue }
                switch info.type {
                case .f32: element = .f32
                case .f16: element = .f16
                case .bf16: element = .bf16
                default: continue
                }
                (bytes, owner, mapped) = (file.rawBytes(of: info), file, file.isMapped)
            case .huggingFace(let weights):
                guard let file = weights.file(containing: entry.name), let info = file.info(named: entry.name) else { continue }
                switch info.dtype {
                case .f32: element = .f32
                case .f16: element = .f16
                case .bf16: element = .bf16
                default: continue
                }
                let stored = try file.storedBytes(of: entry.name)
                (bytes, owner, mapped) = (stored.bytes, file, stored.mapped)
            case .sparse:
                continue
            }
            let rowBytes = entry.shape[1] * element.byteCount
            let first = (entry.rows?.lowerBound ?? 0) * rowBytes
            guard let base = bytes.baseAddress, first + entry.shape[0] * rowBytes <= bytes.count else { continue }
            matrices[role] = StoredFloatMatrix(element: element, rows: entry.shape[0], cols: entry.shape[1], base: base + first,
                                               owner: owner, mappedFile: mapped)
        }
        return matrices
    }
}
