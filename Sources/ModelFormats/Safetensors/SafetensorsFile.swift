import Kernels

/// One tensor's entry in a safetensors header, after validation.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    /// Dimensions, outermost first; `[]` is a scalar.
    public let shape: [Int]
    /// Number of elements (product of `shape`; 1 for a scalar).
    public let elementCount: Int
    /// The tensor's bytes within the data buffer (the header's `data_offsets`).
    public let byteRange: Range<Int>

    public init(name: String, dtype: SafetensorsDType, shape: [Int], elementCount: Int, byteRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.elementCount = elementCount
        self.byteRange = byteRange
    }
}

/// A safetensors file, memory-mapped and validated when opened.
///
/// Implements the format of huggingface/safetensors (README "Format"): an
/// 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data
/// buffer. Before any tensor is trusted the reader checks what the reference
/// Rust reader checks (`Metadata::validate`): N at most 100 MB and within the
/// file, a JSON object header, known dtypes, overflow-free shapes, each
/// tensor's byte count equal to its shape times its dtype size, and byte
/// ranges that tile the data buffer exactly: no overlap, no hole, no trailing
/// bytes. It also refuses duplicate keys, which the spec forbids.
public final class SafetensorsFile: Sendable {
    /// Largest header accepted, as in the reference reader (`MAX_HEADER_SIZE`).
    public static let maximumHeaderLength = 100_000_000

    /// The file as opened, named in every error.
    public let path: String
    /// The header's `__metadata__` map (empty when absent).
    public let metadata: [String: String]
    /// Every tensor, in the order of its data in the file (header order among
    /// empty tensors at the same offset).
    public let tensors: [SafetensorsTensorInfo]
    /// Offset in the file where the data buffer starts (8 + N).
    public let dataOffset: Int

    private let indexByName: [String: Int]
    private let storage: SafetensorsBytes

    /// Maps and validates the file at `path`.
    public convenience init(path: String) throws {
        let mapped = try MappedFile(path: path)
        try self.init(path: path, storage: SafetensorsBytes(bytes: mapped.bytes, owner: mapped))
    }

    /// Validates a file held in memory (`path` only names it in errors).
    convenience init(path: String, contents: [UInt8]) throws {
        try self.init(path: path, storage: SafetensorsBytes(copying: contents))
    }

    private init(path: String, storage: SafetensorsBytes) throws {
        let header = try SafetensorsHeader(bytes: storage.bytes, file: path)
        self.path = path
        self.metadata = header.metadata
        self.tensors = header.tensors
        self.dataOffset = header.dataOffset
        self.indexByName = Dictionary(uniqueKeysWithValues: header.tensors.enumerated().map { ($1.name, $0) })
        self.storage = storage
    }

    /// Names of all tensors, in file order.
    public var tensorNames: [String] { tensors.map(\.name) }

    /// The entry for `name`, or nil when the file has no such tensor.
    public func info(named name: String) -> SafetensorsTensorInfo? {
        indexByName[name].map { tensors[$0] }
    }

    /// Whether the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { indexByName[name] != nil }

    /// Calls `body` with the tensor's bytes as stored (little-endian, row-major);
    /// the pointer is valid only during the call.
    public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let info = try requireInfo(name)
        let start = dataOffset + info.byteRange.lowerBound
        let end = dataOffset + info.byteRange.upperBound
        return try body(UnsafeRawBufferPointer(rebasing: storage.bytes[start..<end]))
    }

    /// The tensor's bytes as stored, valid while this file lives (it owns the mapping), and whether they are the file
    /// mapped read-only: for matrices read in place (`Checkpoint.decodableProjections`).
    public func storedBytes(of name: String) throws -> (bytes: UnsafeRawBufferPointer, mapped: Bool) {
        let info = try requireInfo(name)
        let start = dataOffset + info.byteRange.lowerBound, end = dataOffset + info.byteRange.upperBound
        return (UnsafeRawBufferPointer(rebasing: storage.bytes[start..<end]), storage.isMapped)
    }

    /// A copy of the tensor's bytes as stored.
    public func rawBytes(named name: String) throws -> [UInt8] {
        try withRawBytes(of: name) { Array($0) }
    }

    /// The tensor converted to Float32 (F32, F16, BF16 exactly; I8 and U8 as
    /// their integer values). Other dtypes throw `unsupported`.
    public func tensor(named name: String) throws -> Tensor {
        let info = try requireInfo(name)
        guard info.dtype.convertsToFloat32 else {
            throw ModelFormatError.unsupported(
                file: path, field: "tensor '\(name)' dtype",
                reason: "losad converts F32, F16, BF16, I8 and U8 tensors to Float32, not \(info.dtype)")
        }
        let result = Tensor(zeros: info.shape)
        try withRawBytes(of: name) { raw in
            SafetensorsConversion.widen(raw, from: info.dtype, to: result.pointer, count: info.elementCount)
        }
        return result
    }

    private func requireInfo(_ name: String) throws -> SafetensorsTensorInfo {
        guard let info = info(named: name) else {
            throw ModelFormatError.invalid(file: path, field: "tensor '\(name)'", reason: "the file has no tensor of that name")
        }
        return info
    }
}

/// Bytes of a safetensors file and the object that keeps them alive.
final class SafetensorsBytes: @unchecked Sendable {
    // Immutable after init: the bytes are only read, and `owner` (a MappedFile)
    // or `allocation` keeps them valid for the life of this object.
    let bytes: UnsafeRawBufferPointer
    private let owner: AnyObject?
    private let allocation: UnsafeMutableRawPointer?

    /// Whether the bytes are a file mapped read-only (not a copy).
    var isMapped: Bool { allocation == nil }

    init(bytes: UnsafeRawBufferPointer, owner: AnyObject) {
        self.bytes = bytes
        self.owner = owner
        self.allocation = nil
    }

    init(copying contents: [UInt8]) {
        let allocation = UnsafeMutableRawPointer.allocate(byteCount: max(contents.count, 1), alignment: 64)
        contents.withUnsafeBytes { source in
            if let base = source.baseAddress { allocation.copyMemory(from: base, byteCount: source.count) }
        }
        self.bytes = UnsafeRawBufferPointer(start: allocation, count: contents.count)
        self.owner = nil
        self.allocation = allocation
    }

    deinit {
        allocation?.deallocate()
    }
}

// MARK: - Header validation

/// The parsed and validated header of a safetensors file.
struct SafetensorsHeader {
    let metadata: [String: String]
    let tensors: [SafetensorsTensorInfo]
    let dataOffset: Int

    init(bytes: UnsafeRawBufferPointer, file: String) throws {
        var cursor = ByteCursor(bytes: bytes, file: file)
        let declaredLength = try cursor.read(UInt64.self, field: "header length")
        guard declaredLength <= UInt64(SafetensorsFile.maximumHeaderLength) else {
            throw ModelFormatError.invalid(
                file: file, field: "header length",
                reason: "\(declaredLength) bytes is more than the \(SafetensorsFile.maximumHeaderLength) a safetensors header may have; "
                    + "the file is corrupt or not safetensors")
        }
        let headerBytes = try cursor.readBytes(Int(declaredLength), field: "header")
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw ModelFormatError.invalid(file: file, field: "header", reason: "not valid UTF-8")
        }
        let root: SafetensorsJSON
        do {
            root = try SafetensorsJSONParser.parse(headerBytes)
        } catch {
            throw ModelFormatError.invalid(file: file, field: "header", reason: "not valid JSON: \(error)")
        }
        guard case .object(let members) = root else {
            throw ModelFormatError.invalid(file: file, field: "header", reason: "must be a JSON object, found \(root.kindName)")
        }

        var metadata: [String: String] = [:]
        var entries: [SafetensorsTensorInfo] = []
        let bufferLength = cursor.remaining
        for member in members {
            if member.key == "__metadata__" {
                metadata = try Self.metadata(member.value, file: file)
            } else {
                entries.append(try Self.tensorInfo(name: member.key, member.value, file: file,
                                                   bufferLength: bufferLength, dataOffset: cursor.offset))
            }
        }
        self.metadata = metadata
        self.tensors = try Self.checkCoverage(entries, bufferLength: bufferLength, file: file)
        self.dataOffset = cursor.offset
    }

    private static func metadata(_ value: SafetensorsJSON, file: String) throws -> [String: String] {
        switch value {
        case .null:
            return [:]  // the reference reader accepts `null` as "no metadata"
        case .object(let members):
            var result: [String: String] = [:]
            for member in members {
                guard case .string(let text) = member.value else {
                    throw ModelFormatError.invalid(file: file, field: "__metadata__ key '\(member.key)'",
                                                   reason: "must be a string, found \(member.value.kindName)")
                }
                result[member.key] = text
            }
            return result
        default:
            throw ModelFormatError.invalid(file: file, field: "__metadata__",
                                           reason: "must be an object of strings, found \(value.kindName)")
        }
    }

    private static func tensorInfo(name: String, _ value: SafetensorsJSON, file: String,
                                   bufferLength: Int, dataOffset: Int) throws -> SafetensorsTensorInfo {
        let field = "tensor '\(name)'"
        guard case .object = value else {
            throw ModelFormatError.invalid(file: file, field: field,
                                           reason: "must be an object with dtype, shape and data_offsets, found \(value.kindName)")
        }
        func invalid(_ part: String, _ reason: String) -> ModelFormatError {
            .invalid(file: file, field: "\(field) \(part)", reason: reason)
        }
        // Unknown members are ignored, as the reference reader ignores them.
        guard let dtypeValue = value["dtype"] else { throw invalid("dtype", "is missing") }
        guard let shapeValue = value["shape"] else { throw invalid("shape", "is missing") }
        guard let offsetsValue = value["data_offsets"] else { throw invalid("data_offsets", "is missing") }

        guard case .string(let dtypeName) = dtypeValue else {
            throw invalid("dtype", "must be a string, found \(dtypeValue.kindName)")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw ModelFormatError.unsupported(file: file, field: "\(field) dtype",
                                               reason: "unknown dtype '\(dtypeName)'; safetensors defines \(SafetensorsDType.allNames)")
        }

        guard case .array(let dimensions) = shapeValue else {
            throw invalid("shape", "must be an array of non-negative integers, found \(shapeValue.kindName)")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dimensions.count)
        var elementCount = 1
        for (axis, dimension) in dimensions.enumerated() {
            let size: Int
            switch dimension.nonNegativeInteger {
            case .success(let value): size = value
            case .failure(let problem): throw invalid("shape", "dimension \(axis): \(problem)")
            }
            shape.append(size)
            let (product, overflow) = elementCount.multipliedReportingOverflow(by: size)
            guard !overflow else { throw invalid("shape", "the element count of \(Self.describe(dimensions)) overflows") }
            elementCount = product
        }

        guard case .array(let offsets) = offsetsValue, offsets.count == 2 else {
            throw invalid("data_offsets", "must be an array [begin, end] of two non-negative integers, found \(Self.describe(offsetsValue))")
        }
        var bounds: [Int] = []
        for (index, offset) in offsets.enumerated() {
            switch offset.nonNegativeInteger {
            case .success(let value): bounds.append(value)
            case .failure(let problem): throw invalid("data_offsets", "\(index == 0 ? "begin" : "end"): \(problem)")
            }
        }
        let (begin, end) = (bounds[0], bounds[1])
        guard begin <= end else { throw invalid("data_offsets", "begin \(begin) is after end \(end)") }

        let (bits, overflow) = elementCount.multipliedReportingOverflow(by: dtype.bitsPerElement)
        guard !overflow else {
            throw invalid("shape", "the byte size of \(elementCount) \(dtype) elements overflows")
        }
        guard bits % 8 == 0 else {
            throw invalid("shape", "\(elementCount) \(dtype) elements do not fill a whole number of bytes")
        }
        guard end - begin == bits / 8 else {
            throw invalid("data_offsets", "[\(begin), \(end)] holds \(end - begin) bytes but shape \(shape) of \(dtype) needs \(bits / 8)")
        }
        guard end <= bufferLength else {
            throw ModelFormatError.truncated(file: file, field: "\(field) data", offset: dataOffset + begin,
                                             needed: end - begin, available: max(0, bufferLength - begin))
        }
        return SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, elementCount: elementCount, byteRange: begin..<end)
    }

    /// Sorts by offset and checks that the ranges tile `0..<bufferLength` exactly,
    /// as the reference reader requires (no overlaps, holes or trailing bytes).
    private static func checkCoverage(_ entries: [SafetensorsTensorInfo], bufferLength: Int,
                                      file: String) throws -> [SafetensorsTensorInfo] {
        let sorted = entries.enumerated().sorted {
            ($0.element.byteRange.lowerBound, $0.element.byteRange.upperBound, $0.offset)
                < ($1.element.byteRange.lowerBound, $1.element.byteRange.upperBound, $1.offset)
        }.map(\.element)
        var covered = 0
        var previous: String?
        for info in sorted {
            let begin = info.byteRange.lowerBound
            if begin < covered {
                throw ModelFormatError.invalid(
                    file: file, field: "tensor '\(info.name)' data_offsets",
                    reason: "bytes [\(begin), \(info.byteRange.upperBound)) overlap tensor '\(previous ?? "")', which ends at \(covered)")
            }
            if begin > covered {
                throw ModelFormatError.invalid(
                    file: file, field: "tensor '\(info.name)' data_offsets",
                    reason: "it begins at \(begin) but the tensors before it end at \(covered), leaving a hole in the data buffer")
            }
            covered = info.byteRange.upperBound
            previous = info.name
        }
        guard covered == bufferLength else {
            throw ModelFormatError.invalid(
                file: file, field: "data buffer",
                reason: "it has \(bufferLength) bytes but the tensors cover only \(covered); the file has bytes no tensor owns")
        }
        return sorted
    }

    private static func describe(_ value: SafetensorsJSON) -> String {
        switch value {
        case .array(let elements): return "[" + elements.map(describe).joined(separator: ", ") + "]"
        case .number(let text): return text
        default: return value.kindName
        }
    }

    private static func describe(_ elements: [SafetensorsJSON]) -> String { describe(.array(elements)) }
}

// MARK: - Conversion

/// Element conversions between stored safetensors bytes and Float32.
enum SafetensorsConversion {
    /// Elements converted per step through an aligned scratch buffer; the stored
    /// data may start at any byte, so 16-bit values are copied before widening.
    static let chunk = 4096

    /// Widens `count` stored values of `dtype` to Float32 (`dtype.convertsToFloat32`).
    static func widen(_ source: UnsafeRawBufferPointer, from dtype: SafetensorsDType,
                      to destination: UnsafeMutablePointer<Float>, count: Int) {
        precondition(dtype.byteCount(elements: count) == source.count, "\(source.count) bytes for \(count) \(dtype)")
        guard count > 0, let base = source.baseAddress else { return }
        switch dtype {
        case .f32:
            #if _endian(little)
            UnsafeMutableRawPointer(destination).copyMemory(from: base, byteCount: count * 4)
            #else
            for i in 0..<count {
                destination[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            }
            #endif
        case .f16, .bf16:
            withUnsafeTemporaryAllocation(of: UInt16.self, capacity: chunk) { scratch in
                var done = 0
                while done < count {
                    let n = min(chunk, count - done)
                    for i in 0..<n {
                        scratch[i] = UInt16(littleEndian: base.loadUnaligned(fromByteOffset: (done + i) * 2, as: UInt16.self))
                    }
                    if dtype == .f16 {
                        convertFloat16ToFloat32(scratch.baseAddress!, destination + done, count: n)
                    } else {
                        convertBFloat16ToFloat32(scratch.baseAddress!, destination + done, count: n)
                    }
                    done += n
                }
            }
        case .i8:
            for i in 0..<count { destination[i] = Float(Int8(bitPattern: source[i])) }
        case .u8:
            for i in 0..<count { destination[i] = Float(source[i]) }
        default:
            preconditionFailure("\(dtype) does not convert to Float32")
        }
    }
}
