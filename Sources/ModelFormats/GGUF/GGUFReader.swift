// Parsing of GGUF versions 2 and 3, little-endian
// (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), with the checks
// of llama.cpp's ggml/src/gguf.cpp: every count, length, dimension, alignment
// and offset is checked against the bytes that remain before it is trusted or
// used to allocate, and every error names the header field, key or tensor.

/// What the header, metadata and tensor infos of a GGUF file say, checked against its size.
struct GGUFLayout: Sendable {
    var version: UInt32
    var alignment: Int
    var metadata: GGUFMetadata
    var tensors: [GGUFTensorInfo]
    /// Where the (aligned) tensor data section starts in the file.
    var dataOffset: Int
}

/// A single pass over a GGUF file's bytes that produces its `GGUFLayout`.
struct GGUFParser {
    private var cursor: ByteCursor
    private var file: String { cursor.file }

    /// Parses and validates `bytes`; `file` names the source in errors.
    static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> GGUFLayout {
        var parser = GGUFParser(cursor: ByteCursor(bytes: bytes, file: file))
        return try parser.parseFile()
    }

    private init(cursor: ByteCursor) {
        self.cursor = cursor
    }

    private mutating func parseFile() throws -> GGUFLayout {
        let version = try readMagicAndVersion()
        // A first bound on each count: all that follows must hold at least this many entries.
        let tensorCount = try readCount(field: "header tensor count", entries: "tensor infos",
                                        minimumBytesEach: GGUFFormat.minimumTensorInfoBytes)
        let metadataCount = try readCount(field: "header metadata count", entries: "metadata entries",
                                          minimumBytesEach: GGUFFormat.minimumMetadataEntryBytes)
        let metadata = try readMetadata(count: metadataCount)
        let alignment = try alignment(in: metadata)
        // The tensor infos follow the metadata: bound their count by what is left now.
        try checkCount(tensorCount, field: "header tensor count", entries: "tensor infos",
                       minimumBytesEach: GGUFFormat.minimumTensorInfoBytes)
        let infos = try readTensorInfos(count: tensorCount, alignment: alignment)
        let dataOffset = try dataSectionStart(tensorCount: tensorCount, alignment: alignment)
        let tensors = try placeTensors(infos, dataOffset: dataOffset)
        return GGUFLayout(version: version, alignment: alignment, metadata: metadata,
                          tensors: tensors, dataOffset: dataOffset)
    }

    // MARK: - Header

    private mutating func readMagicAndVersion() throws -> UInt32 {
        let magic = try cursor.readBytes(4, field: "header magic")
        if !magic.elementsEqual(GGUFFormat.magic) {
            if magic.elementsEqual(GGUFFormat.magic.reversed()) {
                throw ModelFormatError.unsupported(
                    file: file, field: "header magic",
                    reason: "the bytes 'FUGG' are 'GGUF' byte-swapped, so this is a big-endian file; losad reads little-endian GGUF only (convert it with gguf-py's gguf-convert-endian)")
            }
            let found = magic.map { byte in String(byte, radix: 16, uppercase: true) }.joined(separator: " ")
            throw ModelFormatError.invalid(file: file, field: "header magic",
                                           reason: "expected the bytes 'GGUF' (47 47 55 46), found \(found); this is not a GGUF file")
        }
        let version = try cursor.read(UInt32.self, field: "header version")
        if GGUFFormat.readableVersions.contains(version) { return version }
        // A big-endian writer stores 3 as 00 00 00 03, which reads here as 0x03000000.
        if version & 0xFFFF == 0, version != 0, (1...GGUFFormat.readableVersions.upperBound).contains(version.byteSwapped) {
            throw ModelFormatError.unsupported(
                file: file, field: "header version",
                reason: "\(version) is version \(version.byteSwapped) byte-swapped, so this is a big-endian file; losad reads little-endian GGUF only (convert it with gguf-py's gguf-convert-endian)")
        }
        switch version {
        case 0:
            throw ModelFormatError.invalid(file: file, field: "header version", reason: "0 is not a GGUF version")
        case 1:
            throw ModelFormatError.unsupported(file: file, field: "header version",
                                               reason: "GGUF version 1 is obsolete; losad reads versions 2 and 3 (re-convert the model with a current llama.cpp)")
        default:
            throw ModelFormatError.unsupported(file: file, field: "header version",
                                               reason: "version \(version) is newer than the versions losad reads (2 and 3)")
        }
    }

    /// Reads a 64-bit count and refuses it unless that many entries of at
    /// least `minimumBytesEach` bytes fit in the rest of the file.
    private mutating func readCount(field: String, entries: String, minimumBytesEach: Int) throws -> Int {
        let count = try cursor.read(UInt64.self, field: field)
        try checkCount(count, field: field, entries: entries, minimumBytesEach: minimumBytesEach)
        return Int(count)
    }

    private func checkCount<Count: BinaryInteger>(_ count: Count, field: @autoclosure () -> String, entries: String,
                                                   minimumBytesEach: Int) throws {
        let available = cursor.remaining
        guard count <= available / minimumBytesEach else {
            throw ModelFormatError.invalid(
                file: file, field: field(),
                reason: "\(count) \(entries) need at least \(minimumBytesEach) bytes each, but only \(available) bytes follow")
        }
    }

    /// A length-prefixed UTF-8 string; the length is checked against the bytes
    /// left and against `maxBytes` (naming `what` is limited) before anything is read.
    private mutating func readString(field: @autoclosure () -> String, maxBytes: Int = GGUFFormat.maxStringBytes,
                                     limit what: String = "GGUF strings losad reads") throws -> String {
        let length = try cursor.read(UInt64.self, field: field() + " length")
        guard length <= cursor.remaining else {
            throw ModelFormatError.truncated(file: file, field: field(), offset: cursor.offset,
                                             needed: Int(clamping: length), available: cursor.remaining)
        }
        guard length <= maxBytes else {
            throw ModelFormatError.invalid(file: file, field: field(), reason: "it is \(length) bytes long; \(what) hold at most \(maxBytes)")
        }
        return try cursor.readUTF8(Int(length), field: field())
    }

    // MARK: - Metadata

    private mutating func readMetadata(count: Int) throws -> GGUFMetadata {
        var metadata = GGUFMetadata()
        for index in 0..<count {
            let key = try readString(field: "metadata key \(index)", maxBytes: GGUFFormat.maxKeyBytes, limit: "GGUF keys")
            let keyField = "metadata key \(index) '\(key)'"
            guard !key.isEmpty else {
                throw ModelFormatError.invalid(file: file, field: "metadata key \(index)", reason: "the key is empty")
            }
            if let earlier = metadata.index(of: key) {
                throw ModelFormatError.invalid(file: file, field: keyField, reason: "the key repeats metadata key \(earlier)")
            }
            let rawType = try cursor.read(UInt32.self, field: keyField + " type")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw ModelFormatError.invalid(file: file, field: keyField + " type",
                                               reason: "\(rawType) is not a GGUF value type (0…12)")
            }
            var path = ValuePath(keyField: keyField)
            let value = try readValue(type, path: &path, depth: 0)
            metadata.appendUnchecked(key: key, value: value)
        }
        return metadata
    }

    /// Names a value inside a metadata entry: "metadata key 7 'tokenizer.ggml.tokens' value[1234]".
    private struct ValuePath {
        let keyField: String
        var indices: [Int] = []

        var description: String {
            keyField + " value" + indices.map { "[\($0)]" }.joined()
        }
    }

    private mutating func readValue(_ type: GGUFValueType, path: inout ValuePath, depth: Int) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try cursor.read(UInt8.self, field: path.description))
        case .int8: return .int8(try cursor.read(Int8.self, field: path.description))
        case .uint16: return .uint16(try cursor.read(UInt16.self, field: path.description))
        case .int16: return .int16(try cursor.read(Int16.self, field: path.description))
        case .uint32: return .uint32(try cursor.read(UInt32.self, field: path.description))
        case .int32: return .int32(try cursor.read(Int32.self, field: path.description))
        case .uint64: return .uint64(try cursor.read(UInt64.self, field: path.description))
        case .int64: return .int64(try cursor.read(Int64.self, field: path.description))
        case .float32: return .float32(try cursor.readFloat32(field: path.description))
        case .float64: return .float64(try cursor.readFloat64(field: path.description))
        case .bool:
            let byte = try cursor.read(UInt8.self, field: path.description)
            guard byte <= 1 else {
                throw ModelFormatError.invalid(file: file, field: path.description,
                                               reason: "a GGUF bool is the byte 0 or 1, found \(byte)")
            }
            return .bool(byte == 1)
        case .string:
            return .string(try readString(field: path.description))
        case .array:
            let rawElementType = try cursor.read(UInt32.self, field: path.description + " element type")
            guard let elementType = GGUFValueType(rawValue: rawElementType) else {
                throw ModelFormatError.invalid(file: file, field: path.description + " element type",
                                               reason: "\(rawElementType) is not a GGUF value type (0…12)")
            }
            guard elementType != .array || depth + 1 < GGUFFormat.maxArrayNesting else {
                throw ModelFormatError.unsupported(file: file, field: path.description,
                                                   reason: "arrays nested more than \(GGUFFormat.maxArrayNesting) deep")
            }
            let length = try cursor.read(UInt64.self, field: path.description + " length")
            try checkCount(length, field: path.description + " length", entries: "\(elementType) elements",
                           minimumBytesEach: elementType.minimumEncodedBytes)
            guard length <= GGUFFormat.maxArrayLength else {
                throw ModelFormatError.unsupported(file: file, field: path.description + " length",
                                                   reason: "\(length) elements; losad reads metadata arrays of at most \(GGUFFormat.maxArrayLength)")
            }
            // Grown as elements are read, so memory follows the bytes actually parsed.
            var values: [GGUFValue] = []
            values.reserveCapacity(min(Int(length), 1 << 16))
            path.indices.append(0)
            for index in 0..<Int(length) {
                path.indices[path.indices.count - 1] = index
                values.append(try readValue(elementType, path: &path, depth: depth + 1))
            }
            path.indices.removeLast()
            return .array(elementType: elementType, values)
        }
    }

    /// `general.alignment`: a uint32 non-zero power of two (gguf.cpp's rule), 32 when absent.
    private func alignment(in metadata: GGUFMetadata) throws -> Int {
        guard let index = metadata.index(of: GGUFFormat.alignmentKey), let value = metadata[GGUFFormat.alignmentKey] else {
            return GGUFFormat.defaultAlignment
        }
        let field = "metadata key \(index) '\(GGUFFormat.alignmentKey)'"
        guard case .uint32(let alignment) = value else {
            throw ModelFormatError.invalid(file: file, field: field, reason: "the alignment must be a uint32, found a \(value.type)")
        }
        guard GGUFFormat.isValidAlignment(alignment) else {
            throw ModelFormatError.invalid(file: file, field: field, reason: "the alignment must be a non-zero power of two, found \(alignment)")
        }
        return Int(alignment)
    }

    // MARK: - Tensor infos

    /// A tensor info as read, before its data is placed in the file.
    private struct RawTensorInfo {
        var name: String
        var dimensions: [Int]
        var elementCount: Int
        var type: GGMLType
        var byteCount: Int
        var offset: Int
    }

    private mutating func readTensorInfos(count: Int, alignment: Int) throws -> [RawTensorInfo] {
        // Grown as infos are read (each takes at least 24 bytes), not reserved from the declared count.
        var infos: [RawTensorInfo] = []
        var indexByName: [String: Int] = [:]
        for index in 0..<count {
            let name = try readString(field: "tensor \(index) name", maxBytes: GGUFFormat.maxTensorNameBytes, limit: "ggml names")
            if let earlier = indexByName[name] {
                throw ModelFormatError.invalid(file: file, field: "tensor \(index) '\(name)'",
                                               reason: "the name repeats tensor \(earlier)'s")
            }
            indexByName[name] = index
            infos.append(try readTensorInfo(named: name, alignment: alignment))
        }
        return infos
    }

    private mutating func readTensorInfo(named name: String, alignment: Int) throws -> RawTensorInfo {
        let label = "tensor '\(name)'"
        let rank = try cursor.read(UInt32.self, field: label + " dimension count")
        guard rank <= GGUFFormat.maxDimensions else {
            throw ModelFormatError.invalid(file: file, field: label + " dimension count",
                                           reason: "\(rank) dimensions; ggml tensors have at most \(GGUFFormat.maxDimensions)")
        }
        var dimensions: [Int] = []
        dimensions.reserveCapacity(Int(rank))
        for axis in 0..<Int(rank) {
            let dimension = try cursor.read(UInt64.self, field: "\(label) dimension \(axis)")
            guard dimension <= Int64.max else {
                throw ModelFormatError.invalid(file: file, field: "\(label) dimension \(axis)",
                                               reason: "\(dimension) is larger than 2^63 − 1")
            }
            dimensions.append(Int(dimension))
        }
        // The product of the non-zero dimensions must fit, so that the shape
        // can be multiplied out in any order, even when another dimension is zero.
        var product = 1
        for dimension in dimensions where dimension != 0 {
            let (next, overflow) = product.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw ModelFormatError.invalid(file: file, field: label + " shape",
                                               reason: "the dimensions \(dimensions) (ggml order) multiply to more than 2^63 − 1 elements")
            }
            product = next
        }
        let elementCount = dimensions.contains(0) ? 0 : product

        let rawType = try cursor.read(UInt32.self, field: label + " type")
        guard let type = GGMLType(rawValue: rawType) else {
            throw ModelFormatError.unsupported(file: file, field: label + " type",
                                               reason: "ggml type \(rawType) is not one losad knows (a newer ggml type, or a damaged file)")
        }
        // As in gguf.cpp: each row (ne[0] elements) is a whole number of blocks.
        let rowLength = dimensions.first ?? 1
        guard rowLength % type.blockSize == 0 else {
            throw ModelFormatError.invalid(file: file, field: label + " shape",
                                           reason: "rows of \(rowLength) elements are not a whole number of \(type) blocks of \(type.blockSize)")
        }
        guard let byteCount = type.byteCount(elements: elementCount) else {
            throw ModelFormatError.invalid(file: file, field: label + " shape",
                                           reason: "\(elementCount) elements of \(type) take more than 2^63 − 1 bytes")
        }

        let offset = try cursor.read(UInt64.self, field: label + " offset")
        guard offset <= Int64.max else {
            throw ModelFormatError.invalid(file: file, field: label + " offset", reason: "\(offset) is larger than 2^63 − 1")
        }
        guard offset % UInt64(alignment) == 0 else {
            throw ModelFormatError.invalid(file: file, field: label + " offset",
                                           reason: "\(offset) is not a multiple of the alignment \(alignment)")
        }
        return RawTensorInfo(name: name, dimensions: dimensions, elementCount: elementCount, type: type,
                             byteCount: byteCount, offset: Int(offset))
    }

    // MARK: - Tensor data

    /// The data section starts at the next multiple of the alignment after the tensor infos.
    private func dataSectionStart(tensorCount: Int, alignment: Int) throws -> Int {
        guard tensorCount > 0 else { return cursor.offset }
        guard let start = GGUFFormat.aligned(cursor.offset, to: alignment), start <= cursor.bytes.count else {
            throw ModelFormatError.truncated(file: file, field: "padding before the tensor data", offset: cursor.offset,
                                             needed: alignment - cursor.offset % alignment, available: cursor.remaining)
        }
        return start
    }

    /// Checks that each tensor's bytes lie inside the file and that no two tensors share bytes.
    private func placeTensors(_ infos: [RawTensorInfo], dataOffset: Int) throws -> [GGUFTensorInfo] {
        let fileSize = cursor.bytes.count
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(infos.count)
        for info in infos {
            let label = "tensor '\(info.name)'"
            let (start, overflow) = dataOffset.addingReportingOverflow(info.offset)
            guard !overflow, start <= fileSize else {
                throw ModelFormatError.invalid(
                    file: file, field: label + " offset",
                    reason: "\(info.offset) puts the data past the end of the file (data section at \(dataOffset), file of \(fileSize) bytes)")
            }
            guard info.byteCount <= fileSize - start else {
                throw ModelFormatError.truncated(file: file, field: label + " data", offset: start,
                                                 needed: info.byteCount, available: fileSize - start)
            }
            tensors.append(GGUFTensorInfo(name: info.name, dimensions: info.dimensions, type: info.type,
                                          offset: info.offset, fileOffset: start, byteCount: info.byteCount,
                                          elementCount: info.elementCount))
        }
        let ordered = tensors.filter { $0.byteCount > 0 }.sorted { $0.fileOffset < $1.fileOffset }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where next.fileOffset < previous.fileOffset + previous.byteCount {
            throw ModelFormatError.invalid(
                file: file, field: "tensor '\(next.name)' offset",
                reason: "its data at \(next.offset) overlaps tensor '\(previous.name)' (\(previous.byteCount) bytes at \(previous.offset))")
        }
        return tensors
    }
}
