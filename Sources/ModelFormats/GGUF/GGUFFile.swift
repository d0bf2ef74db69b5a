import Kernels

/// A GGUF checkpoint opened for reading: its metadata and tensor infos,
/// validated when opened, and its tensor data read in place from a memory mapping.
///
/// Follows the GGUF specification (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md),
/// versions 2 and 3, little-endian; see `GGUFParser` for the checks.
public final class GGUFFile: @unchecked Sendable {
    // @unchecked: every property is immutable; `bytes` points into memory that
    // `owner` keeps mapped (or allocated) for this object's lifetime.

    /// The path the file was opened from; errors name it.
    public let path: String
    /// The format version (2 or 3).
    public let version: UInt32
    /// The alignment of tensor data, from `general.alignment` (32 when absent).
    public let alignment: Int
    /// The key/value pairs in the file's order.
    public let metadata: GGUFMetadata
    /// The tensor infos in the file's order.
    public let tensors: [GGUFTensorInfo]
    /// Where the tensor data section starts in the file.
    public let dataOffset: Int

    private let tensorIndex: [String: Int]
    private let bytes: UnsafeRawBufferPointer
    private let owner: AnyObject

    /// Whether the bytes are the file mapped read-only (not a copy in memory).
    public var isMapped: Bool { owner is MappedFile }

    /// Maps the file at `path` and validates its header, metadata and tensor infos.
    public convenience init(path: String) throws {
        let mapping = try MappedFile(path: path)
        try self.init(bytes: mapping.bytes, path: path, owner: mapping)
    }

    /// Parses a copy of `contents` as if it were the file `path` (for tests and in-memory data).
    convenience init(contents: [UInt8], path: String) throws {
        let copy = GGUFOwnedBytes(contents)
        try self.init(bytes: UnsafeRawBufferPointer(copy.buffer), path: path, owner: copy)
    }

    private init(bytes: UnsafeRawBufferPointer, path: String, owner: AnyObject) throws {
        let layout = try GGUFParser.parse(bytes, file: path)
        self.path = path
        self.version = layout.version
        self.alignment = layout.alignment
        self.metadata = layout.metadata
        self.tensors = layout.tensors
        self.dataOffset = layout.dataOffset
        self.tensorIndex = Dictionary(uniqueKeysWithValues: layout.tensors.enumerated().map { ($1.name, $0) })
        self.bytes = bytes
        self.owner = owner
    }

    /// The file's size in bytes.
    public var fileSize: Int { bytes.count }

    /// The info of the tensor called `name`, if the file has one.
    public func tensorInfo(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// Row-major shapes by tensor name.
    public var tensorShapes: [String: [Int]] {
        Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0.shape) })
    }

    /// The stored bytes of `tensor`, an info of this file; valid while this object lives.
    public func rawBytes(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        precondition(tensorIndex[tensor.name].map { tensors[$0] == tensor } ?? false,
                     "tensor '\(tensor.name)' is not a tensor of \(path)")
        return UnsafeRawBufferPointer(rebasing: bytes[tensor.fileOffset..<(tensor.fileOffset + tensor.byteCount)])
    }

    /// The tensor called `name` converted to Float32, shaped row-major (ggml's dimensions reversed).
    public func tensor(named name: String) throws -> Tensor {
        guard let info = tensorInfo(named: name) else {
            throw ModelFormatError.invalid(file: path, field: "tensor '\(name)'",
                                           reason: "the file has no tensor of that name (it has \(tensors.count) tensors)")
        }
        return try tensor(info)
    }

    /// `info`'s tensor, an info of this file, converted to Float32 and shaped row-major.
    public func tensor(_ info: GGUFTensorInfo) throws -> Tensor {
        let raw = rawBytes(of: info)
        let result = Tensor(zeros: info.shape)
        do {
            // Data at an odd address (an alignment below 8 allows one) is copied
            // to aligned memory first: the codecs read whole 16-bit and 32-bit words.
            if let base = raw.baseAddress, Int(bitPattern: base) % 8 != 0 {
                let aligned = UnsafeMutableRawBufferPointer.allocate(byteCount: raw.count, alignment: 16)
                defer { aligned.deallocate() }
                aligned.copyMemory(from: raw)
                try dequantize(info.type, from: UnsafeRawBufferPointer(aligned), count: info.elementCount, into: result.pointer)
            } else {
                try dequantize(info.type, from: raw, count: info.elementCount, into: result.pointer)
            }
        } catch let error as QuantizationError {
            if case .unsupportedType = error {
                throw ModelFormatError.unsupported(file: path, field: "tensor '\(info.name)' type",
                                                   reason: "losad cannot convert \(info.type) tensors to Float32 yet")
            }
            throw ModelFormatError.invalid(file: path, field: "tensor '\(info.name)' data", reason: error.description)
        } catch let error as ModelFormatError {
            throw error
        } catch {
            throw ModelFormatError.invalid(file: path, field: "tensor '\(info.name)' data", reason: "\(error)")
        }
        return result
    }
}

/// An owned, aligned copy of some bytes, standing in for a mapping.
final class GGUFOwnedBytes {
    let buffer: UnsafeMutableRawBufferPointer

    init(_ contents: [UInt8]) {
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: contents.count, alignment: 64)
        contents.withUnsafeBytes { buffer.copyMemory(from: $0) }
    }

    deinit { buffer.deallocate() }
}
