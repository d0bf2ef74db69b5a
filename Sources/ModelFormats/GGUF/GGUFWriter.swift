import Kernels

/// Writes a GGUF version 3 file (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
/// metadata in order, then tensor infos, then each tensor's data at an aligned
/// offset with zero padding after it (as gguf.cpp and gguf-py write it).
///
/// Tensors are kept by reference until `write` streams them out one at a time,
/// encoding Float32 values a few rows at a time (or asking a producer for them); the file appears at its
/// destination only once it is complete and on disk (see `AtomicOutputFile`).
public struct GGUFWriter: Sendable {
    /// The key/value pairs to write, in order. `general.alignment` (a uint32
    /// power of two) sets the data alignment; 32 when absent.
    public var metadata: GGUFMetadata
    private var pending: [PendingTensor] = []

    /// Encoded Float32 values are written in chunks of about this many bytes.
    private static let chunkBytes = 4 << 20

    /// A writer that starts from `metadata` (for example a read file's, to carry it over).
    public init(metadata: GGUFMetadata = GGUFMetadata()) {
        self.metadata = metadata
    }

    /// The names of the tensors added so far, in the order they will be written.
    public var tensorNames: [String] { pending.map(\.name) }

    /// Sets `general.alignment`, the multiple every tensor's data offset is rounded to.
    public mutating func setAlignment(_ alignment: UInt32) {
        metadata[GGUFFormat.alignmentKey] = .uint32(alignment)
    }

    /// Adds Float32 values (row-major) to be stored encoded as `type` (F32, F16,
    /// BF16, or a block type the `quantize` dispatch knows).
    public mutating func addTensor(named name: String, _ tensor: Tensor, as type: GGMLType) {
        pending.append(PendingTensor(name: name, dimensions: tensor.shape.reversed(), type: type, source: .values(tensor)))
    }

    /// Adds Float32 values of row-major `shape` made only when the writer reaches the tensor, then encoded as `type`
    /// like `addTensor(named:_:as:)`'s: a writer of many such tensors holds one at a time.
    public mutating func addTensor(named name: String, shape: [Int], as type: GGMLType,
                                   makingValues make: @escaping @Sendable () throws -> Tensor) {
        pending.append(PendingTensor(name: name, dimensions: shape.reversed(), type: type, source: .madeValues(make)))
    }

    /// Adds already encoded bytes of `type` for a tensor of row-major `shape`.
    public mutating func addTensor(named name: String, shape: [Int], type: GGMLType, bytes: [UInt8]) {
        pending.append(PendingTensor(name: name, dimensions: shape.reversed(), type: type, source: .bytes(bytes)))
    }

    /// Adds a tensor whose `byteCount` bytes of `type` are produced only when its turn comes while the file is
    /// written: `produce` hands them to its `write` argument, in order, in as many pieces as it likes. A writer of
    /// tensors made on demand (the sparse file's encoded matrices) then holds one of them at a time, not all.
    /// Producing a different number of bytes fails the write (the file does not appear).
    public mutating func addTensor(named name: String, shape: [Int], type: GGMLType, byteCount: Int,
                                   producing produce: @escaping TensorProducer) {
        pending.append(PendingTensor(name: name, dimensions: shape.reversed(), type: type, source: .produced(byteCount, produce)))
    }

    /// Hands a tensor's bytes to `write` (`addTensor(named:shape:type:byteCount:producing:)`).
    public typealias TensorProducer = @Sendable (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void

    /// Adds a tensor of a read file unchanged (same type, dimensions and bytes), optionally renamed.
    public mutating func addTensor(copying info: GGUFTensorInfo, from file: GGUFFile, named name: String? = nil) {
        pending.append(PendingTensor(name: name ?? info.name, dimensions: info.dimensions, type: info.type,
                                     source: .file(file, info)))
    }

    // MARK: - Writing

    /// Writes the file to `path`, replacing an existing file only when `replacingExisting` is true.
    ///
    /// Everything is checked before the temporary file is created; an error
    /// while writing removes it and leaves any existing file untouched.
    public func write(to path: String, replacingExisting: Bool = false) throws {
        let alignment = try checkedAlignment(file: path)
        try checkMetadata(file: path)
        let placed = try placeTensors(file: path, alignment: alignment)

        try AtomicOutputFile.write(to: path, replacingExisting: replacingExisting) { output in
            try output.write(GGUFFormat.magic)
            try output.write(GGUFFormat.writtenVersion)
            try output.write(UInt64(placed.count))
            try output.write(UInt64(metadata.count))
            for (key, value) in metadata.entries {
                try writeString(key, to: output)
                try output.write(value.type.rawValue)
                try writeValue(value, to: output)
            }
            for tensor in placed {
                try writeString(tensor.name, to: output)
                try output.write(UInt32(tensor.dimensions.count))
                for dimension in tensor.dimensions { try output.write(UInt64(dimension)) }
                try output.write(tensor.type.rawValue)
                try output.write(UInt64(tensor.offset))
            }
            try output.pad(to: alignment)
            let dataStart = output.position
            for tensor in placed {
                precondition(output.position - dataStart == tensor.offset, "tensor '\(tensor.name)' misplaced")
                try writeData(of: tensor, to: output, file: path)
                try output.pad(to: alignment)
            }
        }
    }

    // MARK: - Checks

    private func checkedAlignment(file: String) throws -> Int {
        guard let value = metadata[GGUFFormat.alignmentKey] else { return GGUFFormat.defaultAlignment }
        let field = "metadata key '\(GGUFFormat.alignmentKey)'"
        guard case .uint32(let alignment) = value else {
            throw ModelFormatError.invalid(file: file, field: field, reason: "the alignment must be a uint32, found a \(value.type)")
        }
        guard GGUFFormat.isValidAlignment(alignment) else {
            throw ModelFormatError.invalid(file: file, field: field, reason: "the alignment must be a non-zero power of two, found \(alignment)")
        }
        return Int(alignment)
    }

    private func checkMetadata(file: String) throws {
        for (index, entry) in metadata.entries.enumerated() {
            guard !entry.key.isEmpty else {
                throw ModelFormatError.invalid(file: file, field: "metadata key \(index)", reason: "the key is empty")
            }
            guard entry.key.utf8.count <= GGUFFormat.maxKeyBytes else {
                throw ModelFormatError.invalid(file: file, field: "metadata key \(index)",
                                               reason: "the key is \(entry.key.utf8.count) bytes long; GGUF keys are at most \(GGUFFormat.maxKeyBytes)")
            }
            try checkValue(entry.value, field: "metadata key \(index) '\(entry.key)' value", depth: 0, file: file)
        }
    }

    /// Arrays must hold only their declared element type; strings, arrays and
    /// nesting must stay within what the reader accepts.
    private func checkValue(_ value: GGUFValue, field: String, depth: Int, file: String) throws {
        if case .string(let text) = value, text.utf8.count > GGUFFormat.maxStringBytes {
            throw ModelFormatError.unsupported(file: file, field: field,
                                               reason: "\(text.utf8.count) bytes; losad writes strings of at most \(GGUFFormat.maxStringBytes)")
        }
        guard case .array(let elementType, let values) = value else { return }
        guard elementType != .array || depth + 1 < GGUFFormat.maxArrayNesting else {
            throw ModelFormatError.unsupported(file: file, field: field, reason: "arrays nested more than \(GGUFFormat.maxArrayNesting) deep")
        }
        guard values.count <= GGUFFormat.maxArrayLength else {
            throw ModelFormatError.unsupported(file: file, field: field,
                                               reason: "\(values.count) elements; losad writes arrays of at most \(GGUFFormat.maxArrayLength)")
        }
        for (index, element) in values.enumerated() {
            guard element.type == elementType else {
                throw ModelFormatError.invalid(file: file, field: "\(field)[\(index)]",
                                               reason: "a \(element.type) in an array of \(elementType)")
            }
            try checkValue(element, field: "\(field)[\(index)]", depth: depth + 1, file: file)
        }
    }

    /// A tensor with its checked sizes and its offset in the data section.
    private struct PlacedTensor {
        var name: String
        var dimensions: [Int]
        var type: GGMLType
        var source: PendingTensor.Source
        var elementCount: Int
        var byteCount: Int
        var offset: Int
    }

    private func placeTensors(file: String, alignment: Int) throws -> [PlacedTensor] {
        var placed: [PlacedTensor] = []
        var seen: Set<String> = []
        var offset = 0
        for tensor in pending {
            let label = "tensor '\(tensor.name)'"
            guard tensor.name.utf8.count <= GGUFFormat.maxTensorNameBytes else {
                throw ModelFormatError.invalid(file: file, field: label,
                                               reason: "the name is \(tensor.name.utf8.count) bytes long; ggml names hold at most \(GGUFFormat.maxTensorNameBytes)")
            }
            guard seen.insert(tensor.name).inserted else {
                throw ModelFormatError.invalid(file: file, field: label, reason: "the name is used by an earlier tensor")
            }
            guard tensor.dimensions.count <= GGUFFormat.maxDimensions else {
                throw ModelFormatError.invalid(file: file, field: label + " shape",
                                               reason: "\(tensor.dimensions.count) dimensions; ggml tensors have at most \(GGUFFormat.maxDimensions)")
            }
            var elementCount = 1
            for dimension in tensor.dimensions {
                let (next, overflow) = elementCount.multipliedReportingOverflow(by: dimension)
                guard dimension >= 0, !overflow else {
                    throw ModelFormatError.invalid(file: file, field: label + " shape",
                                                   reason: "the row-major shape \(Array(tensor.dimensions.reversed())) is negative or too large")
                }
                elementCount = next
            }
            let rowLength = tensor.dimensions.first ?? 1
            guard rowLength % tensor.type.blockSize == 0, let byteCount = tensor.type.byteCount(elements: elementCount) else {
                throw ModelFormatError.invalid(file: file, field: label + " shape",
                                               reason: "rows of \(rowLength) elements are not a whole number of \(tensor.type) blocks of \(tensor.type.blockSize)")
            }
            switch tensor.source {
            case .values, .madeValues:
                try checkEncodable(tensor.type, field: label + " type", file: file)
            case .bytes(let bytes):
                guard bytes.count == byteCount else {
                    throw ModelFormatError.invalid(file: file, field: label + " data",
                                                   reason: "\(bytes.count) bytes given; \(elementCount) elements of \(tensor.type) take \(byteCount)")
                }
            case .file(_, let info):
                precondition(info.byteCount == byteCount, "a copied tensor keeps its type and dimensions")
            case .produced(let declared, _):
                guard declared == byteCount else {
                    throw ModelFormatError.invalid(file: file, field: label + " data",
                                                   reason: "\(declared) bytes declared; \(elementCount) elements of \(tensor.type) take \(byteCount)")
                }
            }
            placed.append(PlacedTensor(name: tensor.name, dimensions: tensor.dimensions, type: tensor.type, source: tensor.source,
                                       elementCount: elementCount, byteCount: byteCount, offset: offset))
            guard let next = GGUFFormat.aligned(offset + byteCount, to: alignment) else {
                throw ModelFormatError.invalid(file: file, field: label + " data", reason: "the tensor data exceed 2^63 − 1 bytes")
            }
            offset = next
        }
        return placed
    }

    /// Fails before anything is written when the `quantize` dispatch cannot encode `type`.
    private func checkEncodable(_ type: GGMLType, field: String, file: String) throws {
        guard type.canQuantize else {
            throw ModelFormatError.unsupported(file: file, field: field, reason: "losad cannot encode Float32 values as \(type) yet")
        }
    }

    // MARK: - Encoding

    private func writeString(_ string: String, to output: AtomicOutputFile) throws {
        var string = string
        try string.withUTF8 { text in
            try output.write(UInt64(text.count))
            try output.write(UnsafeRawBufferPointer(text))
        }
    }

    /// A value without its type tag (array elements carry none; their array names the type).
    private func writeValue(_ value: GGUFValue, to output: AtomicOutputFile) throws {
        switch value {
        case .uint8(let v): try output.write(v)
        case .int8(let v): try output.write(v)
        case .uint16(let v): try output.write(v)
        case .int16(let v): try output.write(v)
        case .uint32(let v): try output.write(v)
        case .int32(let v): try output.write(v)
        case .uint64(let v): try output.write(v)
        case .int64(let v): try output.write(v)
        case .float32(let v): try output.write(v.bitPattern)
        case .float64(let v): try output.write(v.bitPattern)
        case .bool(let v): try output.write(UInt8(v ? 1 : 0))
        case .string(let v): try writeString(v, to: output)
        case .array(let elementType, let values):
            try output.write(elementType.rawValue)
            try output.write(UInt64(values.count))
            for element in values { try writeValue(element, to: output) }
        }
    }

    private func writeData(of tensor: PlacedTensor, to output: AtomicOutputFile, file: String) throws {
        switch tensor.source {
        case .bytes(let bytes):
            try output.write(bytes)
        case .file(let source, let info):
            try output.write(source.rawBytes(of: info))
        case .values(let values):
            try writeEncoded(values, as: tensor, to: output, file: file)
        case .madeValues(let make):
            let values = try make()
            guard values.count == tensor.elementCount else {
                throw ModelFormatError.invalid(file: file, field: "tensor '\(tensor.name)' data",
                                               reason: "\(values.count) values made for the \(tensor.elementCount) its header declares")
            }
            try writeEncoded(values, as: tensor, to: output, file: file)
        case .produced(_, let produce):
            var written = 0
            try produce { bytes in
                written += bytes.count
                guard written <= tensor.byteCount else { return }
                try output.write(bytes)
            }
            guard written == tensor.byteCount else {
                throw ModelFormatError.invalid(file: file, field: "tensor '\(tensor.name)' data",
                                               reason: "\(written) bytes produced for the \(tensor.byteCount) its header declares")
            }
        }
    }

    /// Encodes whole rows at a time into one scratch buffer, so memory stays at one chunk.
    private func writeEncoded(_ values: Tensor, as tensor: PlacedTensor, to output: AtomicOutputFile, file: String) throws {
        guard tensor.elementCount > 0 else { return }
        let rowLength = tensor.dimensions.first ?? 1
        let rowBytes = tensor.type.byteCount(elements: rowLength)!
        let rowCount = tensor.elementCount / rowLength
        let rowsPerChunk = max(1, GGUFWriter.chunkBytes / max(rowBytes, 1))
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: min(rowsPerChunk, rowCount) * rowBytes, alignment: 64)
        defer { scratch.deallocate() }
        var row = 0
        while row < rowCount {
            let rows = min(rowsPerChunk, rowCount - row)
            let chunk = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<(rows * rowBytes)])
            do {
                try quantize(tensor.type, from: values.pointer + row * rowLength, count: rows * rowLength, into: chunk)
            } catch {
                throw ModelFormatError.invalid(file: file, field: "tensor '\(tensor.name)' data",
                                               reason: "encoding as \(tensor.type) failed: \(error)")
            }
            try output.write(UnsafeRawBufferPointer(chunk))
            row += rows
        }
    }
}

/// A tensor waiting to be written, with where its data comes from.
private struct PendingTensor: Sendable {
    enum Source: Sendable {
        /// Float32 values to encode as the tensor's type.
        case values(Tensor)
        /// Bytes already in the tensor's type.
        case bytes([UInt8])
        /// A tensor of an open file, copied unchanged.
        case file(GGUFFile, GGUFTensorInfo)
        /// Bytes made while the file is written: how many, and what makes them.
        case produced(Int, GGUFWriter.TensorProducer)
        /// Float32 values made while the file is written, then encoded.
        case madeValues(@Sendable () throws -> Tensor)
    }

    var name: String
    /// ggml order, innermost first.
    var dimensions: [Int]
    var type: GGMLType
    var source: Source
}
