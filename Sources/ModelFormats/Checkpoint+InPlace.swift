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
                                                 byteCount: bytes.count, owner: stored.file, name: entry.name)
        }
        return matrices
    }
}
