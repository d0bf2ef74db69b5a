import Kernels

/// The exact zeros of one stored tensor, as its values read back from disk,
/// in total and per row — what a job checks its final sparsity against.
public struct TensorZeroCount: Sendable, Equatable {
    /// The tensor's name in the file.
    public let name: String
    public let role: TensorRole
    /// Row-major shape [N, K]: N rows of K elements (a vector is one row).
    public let shape: [Int]
    /// The storage type, as the format names it.
    public let type: String
    public let elementCount: Int
    /// Values equal to zero (+0 and −0; NaN is not zero).
    public let zeroCount: Int
    /// Zeros in each of the N rows.
    public let zerosPerRow: [Int]

    /// zeroCount / elementCount; 0 for an empty tensor.
    public var sparsity: Double { elementCount == 0 ? 0 : Double(zeroCount) / Double(elementCount) }
}

extension Checkpoint {
    /// Zero counts of the tensors for `roles` (default: the seven projections
    /// of every layer), each decoded to Float32 and counted in turn, so memory
    /// stays at one tensor.
    public func zeroCounts(of roles: [TensorRole]? = nil) throws -> [TensorRole: TensorZeroCount] {
        let roles = roles ?? (0..<config.layerCount).flatMap { layer in
            TensorRole.LayerTensor.projections.map { TensorRole.layer(layer, $0) }
        }
        var counts: [TensorRole: TensorZeroCount] = [:]
        for role in roles {
            guard let entry = entry(for: role) else {
                throw ModelFormatError.invalid(file: path, field: "tensor for \(role)", reason: "not in this checkpoint")
            }
            let values = try tensor(role)
            let rowLength = max(values.rowLength, 1)
            var perRow = [Int](repeating: 0, count: values.count / rowLength)
            values.withUnsafeBufferPointer { buffer in
                for row in perRow.indices {
                    var zeros = 0
                    for value in buffer[(row * rowLength)..<((row + 1) * rowLength)] where value == 0 { zeros += 1 }
                    perRow[row] = zeros
                }
            }
            counts[role] = TensorZeroCount(name: entry.name, role: role, shape: entry.shape, type: entry.type,
                                           elementCount: entry.elementCount, zeroCount: perRow.reduce(0, +), zerosPerRow: perRow)
        }
        return counts
    }
}
