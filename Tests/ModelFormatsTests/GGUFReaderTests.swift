import Kernels
import Testing
@testable import ModelFormats

// MARK: - A GGUF encoder for tests

/// Builds GGUF bytes by hand, independently of `GGUFWriter`, including files no writer should produce.
struct GGUFBytes {
    var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(raw: [UInt8]) { bytes.append(contentsOf: raw) }

    mutating func string(_ text: String) { rawString(Array(text.utf8)) }

    mutating func rawString(_ text: [UInt8]) {
        append(UInt64(text.count))
        bytes.append(contentsOf: text)
    }

    mutating func header(version: UInt32 = 3, tensors: UInt64, metadata: UInt64) {
        append(raw: Array("GGUF".utf8))
        append(version)
        append(tensors)
        append(metadata)
    }

    /// A key, its type tag and its value.
    mutating func entry(_ key: String, _ value: GGUFValue) {
        string(key)
        append(value.type.rawValue)
        encode(value)
    }

    /// A value without its type tag.
    mutating func encode(_ value: GGUFValue) {
        switch value {
        case .uint8(let v): append(v)
        case .int8(let v): append(v)
        case .uint16(let v): append(v)
        case .int16(let v): append(v)
        case .uint32(let v): append(v)
        case .int32(let v): append(v)
        case .uint64(let v): append(v)
        case .int64(let v): append(v)
        case .float32(let v): append(v.bitPattern)
        case .float64(let v): append(v.bitPattern)
        case .bool(let v): append(UInt8(v ? 1 : 0))
        case .string(let v): string(v)
        case .array(let type, let values):
            append(type.rawValue)
            append(UInt64(values.count))
            for element in values { encode(element) }
        }
    }

    mutating func tensorInfo(_ name: String, dimensions: [UInt64], type: UInt32, offset: UInt64) {
        string(name)
        append(UInt32(dimensions.count))
        for dimension in dimensions { append(dimension) }
        append(type)
        append(offset)
    }

    mutating func pad(to alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }
}

/// A tensor for `sampleFile`: dimensions in ggml order, raw data.
struct SampleTensor {
    var name: String
    var dimensions: [UInt64]
    var type: GGMLType
    var data: [UInt8]
}

/// A valid file: header, metadata, tensor infos at running aligned offsets, aligned data with padding after each tensor.
func sampleFile(version: UInt32 = 3, metadata: [(String, GGUFValue)], tensors: [SampleTensor], alignment: Int = 32) -> [UInt8] {
    var file = GGUFBytes()
    file.header(version: version, tensors: UInt64(tensors.count), metadata: UInt64(metadata.count))
    for (key, value) in metadata { file.entry(key, value) }
    var offset = 0
    for tensor in tensors {
        file.tensorInfo(tensor.name, dimensions: tensor.dimensions, type: tensor.type.rawValue, offset: UInt64(offset))
        offset += (tensor.data.count + alignment - 1) / alignment * alignment
    }
    file.pad(to: alignment)
    for tensor in tensors {
        file.append(raw: tensor.data)
        file.pad(to: alignment)
    }
    return file.bytes
}

/// Metadata of every common kind, as a llama.cpp conversion has it.
let sampleMetadata: [(String, GGUFValue)] = [
    ("general.architecture", .string("llama")),
    ("general.name", .string("tiny ünïcode 🙂")),
    ("llama.block_count", .uint32(2)),
    ("llama.rope.freq_base", .float32(10_000)),
    ("llama.attention.layer_norm_rms_epsilon", .float64(1e-6)),
    ("tokenizer.ggml.tokens", .array(elementType: .string, [.string("<s>"), .string("</s>"), .string("hi")])),
    ("tokenizer.ggml.token_type", .array(elementType: .int32, [.int32(3), .int32(3), .int32(1)])),
    ("tokenizer.ggml.add_bos_token", .bool(true)),
]

/// Row-major [3, 4] of 0…11 as F32; F16 and BF16 vectors of exactly representable values.
let sampleTensors: [SampleTensor] = [
    SampleTensor(name: "token_embd.weight", dimensions: [4, 3], type: .f32,
                 data: littleEndianBytes((0..<12).map { Float($0).bitPattern })),
    SampleTensor(name: "blk.0.attn_norm.weight", dimensions: [4], type: .f16,
                 data: littleEndianBytes([UInt16(0x3C00), 0xC000, 0x3800, 0x7BFF])),  // 1, −2, 0.5, 65504
    SampleTensor(name: "output_norm.weight", dimensions: [4], type: .bf16,
                 data: littleEndianBytes([UInt16(0x3F80), 0xC000, 0x3F00, 0x4040])),  // 1, −2, 0.5, 3
]

func parse(_ bytes: [UInt8]) throws -> GGUFFile {
    try GGUFFile(contents: bytes, path: "test.gguf")
}

/// The typed error parsing `bytes` throws, or nil (recording an issue) when it parses or throws another error.
func parseError(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> ModelFormatError? {
    modelFormatError(sourceLocation: sourceLocation) { _ = try parse(bytes) }
}

// MARK: - Reading valid files

@Suite struct GGUFReaderTests {
    @Test func aSmallFileReadsBackItsHeaderMetadataAndTensors() throws {
        let file = try parse(sampleFile(metadata: sampleMetadata, tensors: sampleTensors))
        #expect(file.version == 3)
        #expect(file.alignment == 32)
        #expect(file.metadata == GGUFMetadata(sampleMetadata.map { (key: $0.0, value: $0.1) }))
        #expect(file.metadata.keys == sampleMetadata.map(\.0), "the file's key order is kept")
        #expect(file.metadata["llama.block_count"]?.intValue == 2)
        #expect(file.dataOffset % 32 == 0)

        #expect(file.tensors.map(\.name) == sampleTensors.map(\.name))
        let embedding = try #require(file.tensorInfo(named: "token_embd.weight"))
        #expect(embedding.dimensions == [4, 3])
        #expect(embedding.shape == [3, 4])
        #expect(embedding.type == .f32)
        #expect(embedding.offset == 0 && embedding.fileOffset == file.dataOffset)
        #expect(embedding.byteCount == 48 && embedding.elementCount == 12)
        #expect(file.tensorInfo(named: "blk.0.attn_norm.weight")?.offset == 64)
        #expect(file.tensorInfo(named: "output_norm.weight")?.offset == 96)
        #expect(Array(file.rawBytes(of: embedding)) == sampleTensors[0].data)

        let values = try file.tensor(named: "token_embd.weight")
        #expect(values.shape == [3, 4])
        #expect(values.scalars == (0..<12).map(Float.init))
        #expect(try file.tensor(named: "blk.0.attn_norm.weight").scalars == [1, -2, 0.5, 65504])
        #expect(try file.tensor(named: "output_norm.weight").scalars == [1, -2, 0.5, 3])
        #expect(file.tensorShapes["token_embd.weight"] == [3, 4])
    }

    @Test func versionTwoFilesAreRead() throws {
        let file = try parse(sampleFile(version: 2, metadata: sampleMetadata, tensors: sampleTensors))
        #expect(file.version == 2)
        #expect(try file.tensor(named: "output_norm.weight").scalars == [1, -2, 0.5, 3])
    }

    @Test(arguments: [1, 2, 8, 64, 4096])
    func anAlignmentOtherThan32PlacesTheDataOnItsMultiples(alignment: Int) throws {
        let metadata = sampleMetadata + [("general.alignment", .uint32(UInt32(alignment)))]
        let file = try parse(sampleFile(metadata: metadata, tensors: sampleTensors, alignment: alignment))
        #expect(file.alignment == alignment)
        #expect(file.dataOffset % alignment == 0)
        for tensor in file.tensors { #expect(tensor.offset % alignment == 0) }
        #expect(try file.tensor(named: "blk.0.attn_norm.weight").scalars == [1, -2, 0.5, 65504])
        #expect(try file.tensor(named: "token_embd.weight").scalars == (0..<12).map(Float.init))
    }

    @Test func aFileWithoutTensorsOrMetadataIsValid() throws {
        var bytes = GGUFBytes()
        bytes.header(tensors: 0, metadata: 0)
        let file = try parse(bytes.bytes)
        #expect(file.metadata.isEmpty && file.tensors.isEmpty)
    }

    @Test func zeroElementTensorsAreAllowedAndScalarsHaveOneElement() throws {
        var bytes = GGUFBytes()
        bytes.header(tensors: 2, metadata: 0)
        bytes.tensorInfo("empty", dimensions: [0, 4], type: GGMLType.f32.rawValue, offset: 0)
        bytes.tensorInfo("scalar", dimensions: [], type: GGMLType.f32.rawValue, offset: 0)
        bytes.pad(to: 32)
        bytes.append(Float(7).bitPattern)
        let file = try parse(bytes.bytes)
        let empty = try file.tensor(named: "empty")
        #expect(empty.shape == [4, 0] && empty.count == 0)
        let scalar = try file.tensor(named: "scalar")
        #expect(scalar.shape == [] && scalar.scalars == [7])
    }

    @Test func nestedArraysAreRead() throws {
        let nested: GGUFValue = .array(elementType: .array, [
            .array(elementType: .int32, [.int32(1), .int32(2)]),
            .array(elementType: .string, [.string("a")]),
            .array(elementType: .array, [.array(elementType: .bool, [.bool(false)])]),
            .array(elementType: .uint8, []),
        ])
        let file = try parse(sampleFile(metadata: [("test.nested", nested)], tensors: []))
        #expect(file.metadata["test.nested"] == nested)
    }

    @Test func tensorsAtAnOddAddressStillConvert() throws {
        // Alignment 1 lets F16 data start at an odd file offset.
        func build(halfOffset: UInt64) -> [UInt8] {
            var bytes = GGUFBytes()
            bytes.header(tensors: 2, metadata: 1)
            bytes.entry("general.alignment", .uint32(1))
            bytes.tensorInfo("byte", dimensions: [2], type: GGMLType.i8.rawValue, offset: 0)
            bytes.tensorInfo("half", dimensions: [2], type: GGMLType.f16.rawValue, offset: halfOffset)
            bytes.append(raw: [UInt8](repeating: 0, count: Int(halfOffset)))
            bytes.append(raw: littleEndianBytes([UInt16(0x3C00), 0xC000]))
            return bytes.bytes
        }
        let dataOffset = try parse(build(halfOffset: 2)).dataOffset
        let file = try parse(build(halfOffset: dataOffset % 2 == 0 ? 3 : 2))
        #expect(file.tensorInfo(named: "half")!.fileOffset % 2 == 1)
        #expect(try file.tensor(named: "half").scalars == [1, -2])
    }

    @Test func anUnknownTensorNameIsATypedError() throws {
        let file = try parse(sampleFile(metadata: [], tensors: sampleTensors))
        #expect(throws: ModelFormatError.self) { try file.tensor(named: "missing.weight") }
    }

    @Test func aTypeTheCodecsCannotConvertIsRefusedNamingTheTensor() throws {
        // IQ2_XXS needs lookup grids losad does not carry.
        let tensor = SampleTensor(name: "blk.0.ffn_up.weight", dimensions: [256], type: .iq2_xxs,
                                  data: [UInt8](repeating: 0, count: GGMLType.iq2_xxs.bytesPerBlock))
        let file = try parse(sampleFile(metadata: [], tensors: [tensor]))
        #expect(Array(file.rawBytes(of: file.tensors[0])) == tensor.data)
        do {
            _ = try file.tensor(named: "blk.0.ffn_up.weight")
            Issue.record("IQ2_XXS converted")
        } catch let error as ModelFormatError {
            #expect(error.isUnsupported && error.field == "tensor 'blk.0.ffn_up.weight' type")
        }
    }
}

// MARK: - The malformed-input catalogue

@Suite struct GGUFMalformedInputTests {
    @Test func everyTruncationOfASmallFileIsATypedError() throws {
        let bytes = sampleFile(metadata: sampleMetadata, tensors: sampleTensors)
        let complete = try parse(bytes)
        let lastDataEnd = complete.tensors.map { $0.fileOffset + $0.byteCount }.max()!
        for length in 0..<bytes.count {
            let prefix = Array(bytes[..<length])
            if length >= lastDataEnd {
                // Only the padding after the last tensor is missing: still a whole file.
                #expect(throws: Never.self) { try parse(prefix) }
            } else {
                #expect(throws: ModelFormatError.self, "a file cut at byte \(length)") { try parse(prefix) }
            }
        }
    }

    @Test func aTruncatedTensorNamesTheTensorAndTheNumbers() throws {
        var bytes = sampleFile(metadata: [], tensors: [sampleTensors[0]])
        bytes.removeLast(32 + 8)  // the padding and the last two floats
        let error = try #require(parseError(bytes))
        #expect(error.isTruncated && error.field == "tensor 'token_embd.weight' data")
        #expect(error.description.contains("needs 48 bytes"))
    }

    @Test func theWrongMagicIsNotAGGUFFile() throws {
        var bytes = sampleFile(metadata: [], tensors: [])
        bytes[0] = UInt8(ascii: "P")
        let error = try #require(parseError(bytes))
        #expect(error.isInvalid && error.field == "header magic")
    }

    @Test func versionOneAndUnknownVersionsAreRefusedByNumber() throws {
        for (version, expected) in [(UInt32(1), "version 1"), (4, "version 4"), (0, "0 is not"), (999, "version 999")] {
            let error = try #require(parseError(sampleFile(version: version, metadata: [], tensors: [])))
            #expect(error.field == "header version")
            #expect(error.description.contains(expected), "\(error)")
        }
    }

    @Test func aBigEndianFileIsRecognisedAndRefused() throws {
        var swappedVersion = sampleFile(metadata: [], tensors: [])
        swappedVersion.replaceSubrange(4..<8, with: [0, 0, 0, 3])
        let versionError = try #require(parseError(swappedVersion))
        #expect(versionError.isUnsupported && versionError.description.contains("big-endian"))

        var swappedMagic = sampleFile(metadata: [], tensors: [])
        swappedMagic.replaceSubrange(0..<4, with: Array("FUGG".utf8))
        let magicError = try #require(parseError(swappedMagic))
        #expect(magicError.isUnsupported && magicError.description.contains("big-endian"))
    }

    @Test func absurdHeaderCountsAreRefusedBeforeAllocating() throws {
        for (tensors, metadata, field) in [(UInt64(1) << 60, UInt64(0), "header tensor count"),
                                           (0, 1 << 60, "header metadata count"),
                                           (.max, 0, "header tensor count"),
                                           (0, .max, "header metadata count")] {
            var bytes = GGUFBytes()
            bytes.header(tensors: tensors, metadata: metadata)
            bytes.append(raw: [UInt8](repeating: 0, count: 64))
            let error = try #require(parseError(bytes.bytes))
            #expect(error.isInvalid && error.field == field, "\(error)")
            #expect(error.description.contains("\(tensors == 0 ? metadata : tensors)"))
        }
    }

    @Test func theTensorCountIsBoundedAgainByWhatFollowsTheMetadata() throws {
        // 3 tensor infos fit the bytes after the header, but not after the metadata.
        var bytes = GGUFBytes()
        bytes.header(tensors: 3, metadata: 1)
        bytes.entry("general.name", .string(String(repeating: "x", count: 60)))
        bytes.append(raw: [UInt8](repeating: 0, count: 30))
        let error = try #require(parseError(bytes.bytes))
        #expect(error.isInvalid && error.field == "header tensor count")
    }

    @Test func absurdArrayAndStringLengthsAreRefusedBeforeAllocating() throws {
        var array = GGUFBytes()
        array.header(tensors: 0, metadata: 2)
        array.entry("general.name", .string("x"))
        array.string("tokenizer.ggml.tokens")
        array.append(GGUFValueType.array.rawValue)
        array.append(GGUFValueType.string.rawValue)
        array.append(UInt64(1) << 60)
        array.append(raw: [UInt8](repeating: 0, count: 64))
        let arrayError = try #require(parseError(array.bytes))
        #expect(arrayError.isInvalid && arrayError.field == "metadata key 1 'tokenizer.ggml.tokens' value length", "\(arrayError)")
        #expect(arrayError.description.contains("1152921504606846976 string elements"))

        var string = GGUFBytes()
        string.header(tensors: 0, metadata: 1)
        string.string("general.name")
        string.append(GGUFValueType.string.rawValue)
        string.append(UInt64(1) << 60)
        string.append(raw: Array("short".utf8))
        let stringError = try #require(parseError(string.bytes))
        #expect(stringError.isTruncated && stringError.field == "metadata key 0 'general.name' value", "\(stringError)")

        var key = GGUFBytes()
        key.header(tensors: 0, metadata: 1)
        key.append(UInt64.max)
        key.append(raw: [UInt8](repeating: 0x61, count: 32))
        let keyError = try #require(parseError(key.bytes))
        #expect(keyError.isTruncated && keyError.field == "metadata key 0", "\(keyError)")
    }

    @Test func overlongKeysNamesAndArraysAreRefusedBeforeTheyAreRead() throws {
        var key = GGUFBytes()
        key.header(tensors: 0, metadata: 1)
        key.string(String(repeating: "k", count: GGUFFormat.maxKeyBytes + 1))
        key.append(GGUFValueType.uint8.rawValue)
        key.append(UInt8(0))
        let keyError = try #require(parseError(key.bytes))
        #expect(keyError.isInvalid && keyError.field == "metadata key 0" && keyError.description.contains("65536 bytes"), "\(keyError)")

        // One element past the cap, with the bytes for all of them present.
        let length = GGUFFormat.maxArrayLength + 1
        var array = GGUFBytes()
        array.header(tensors: 0, metadata: 1)
        array.string("tokenizer.ggml.precompiled_charsmap")
        array.append(GGUFValueType.array.rawValue)
        array.append(GGUFValueType.uint8.rawValue)
        array.append(UInt64(length))
        array.bytes += [UInt8](repeating: 0, count: length)
        let arrayError = try #require(parseError(array.bytes))
        #expect(arrayError.isUnsupported && arrayError.field == "metadata key 0 'tokenizer.ggml.precompiled_charsmap' value length")
    }

    @Test func anArrayLengthPastTheEndInsideANestedArrayNamesItsPath() throws {
        var bytes = GGUFBytes()
        bytes.header(tensors: 0, metadata: 1)
        bytes.string("test.nested")
        bytes.append(GGUFValueType.array.rawValue)
        bytes.append(GGUFValueType.array.rawValue)
        bytes.append(UInt64(2))
        bytes.encode(.array(elementType: .uint8, [.uint8(1)]))
        bytes.append(GGUFValueType.uint32.rawValue)
        bytes.append(UInt64(1000))
        bytes.append(UInt32(5))
        let error = try #require(parseError(bytes.bytes))
        #expect(error.field == "metadata key 0 'test.nested' value[1] length", "\(error)")
    }

    @Test func tensorDataOutsideTheFileIsRefused() throws {
        var past = GGUFBytes()
        past.header(tensors: 1, metadata: 0)
        past.tensorInfo("w", dimensions: [4], type: GGMLType.f32.rawValue, offset: 1 << 40)
        past.pad(to: 32)
        past.append(raw: [UInt8](repeating: 0, count: 16))
        let pastError = try #require(parseError(past.bytes))
        #expect(pastError.isInvalid && pastError.field == "tensor 'w' offset", "\(pastError)")

        var overhanging = GGUFBytes()
        overhanging.header(tensors: 1, metadata: 0)
        overhanging.tensorInfo("w", dimensions: [8], type: GGMLType.f32.rawValue, offset: 0)
        overhanging.pad(to: 32)
        overhanging.append(raw: [UInt8](repeating: 0, count: 16))
        let overhangError = try #require(parseError(overhanging.bytes))
        #expect(overhangError.isTruncated && overhangError.field == "tensor 'w' data", "\(overhangError)")

        var huge = GGUFBytes()
        huge.header(tensors: 1, metadata: 0)
        huge.tensorInfo("w", dimensions: [4], type: GGMLType.f32.rawValue, offset: UInt64(Int64.max) - 31)
        huge.pad(to: 32)
        let hugeError = try #require(parseError(huge.bytes))
        #expect(hugeError.field == "tensor 'w' offset", "\(hugeError)")
    }

    @Test func misalignedOffsetsAreRefused() throws {
        var bytes = GGUFBytes()
        bytes.header(tensors: 1, metadata: 0)
        bytes.tensorInfo("w", dimensions: [4], type: GGMLType.f32.rawValue, offset: 4)
        bytes.pad(to: 32)
        bytes.append(raw: [UInt8](repeating: 0, count: 64))
        let error = try #require(parseError(bytes.bytes))
        #expect(error.isInvalid && error.field == "tensor 'w' offset")
        #expect(error.description.contains("4 is not a multiple of the alignment 32"))
    }

    @Test func overlappingTensorsAreRefused() throws {
        var bytes = GGUFBytes()
        bytes.header(tensors: 2, metadata: 0)
        bytes.tensorInfo("a", dimensions: [16], type: GGMLType.f32.rawValue, offset: 0)
        bytes.tensorInfo("b", dimensions: [4], type: GGMLType.f32.rawValue, offset: 32)
        bytes.pad(to: 32)
        bytes.append(raw: [UInt8](repeating: 0, count: 64))
        let error = try #require(parseError(bytes.bytes))
        #expect(error.isInvalid && error.field == "tensor 'b' offset" && error.description.contains("overlaps tensor 'a'"), "\(error)")
    }

    @Test func shapesWhoseProductOverflowsAreRefused() throws {
        for dimensions: [UInt64] in [[1 << 32, 1 << 32], [2, 1 << 62], [0, 1 << 62, 1 << 62], [1 << 31, 1 << 31, 4]] {
            var bytes = GGUFBytes()
            bytes.header(tensors: 1, metadata: 0)
            bytes.tensorInfo("w", dimensions: dimensions, type: GGMLType.f32.rawValue, offset: 0)
            bytes.pad(to: 32)
            let error = try #require(parseError(bytes.bytes))
            #expect(error.isInvalid && error.field == "tensor 'w' shape", "\(dimensions): \(error)")
        }
        var tooLarge = GGUFBytes()
        tooLarge.header(tensors: 1, metadata: 0)
        tooLarge.tensorInfo("w", dimensions: [1 << 63], type: GGMLType.f32.rawValue, offset: 0)
        let error = try #require(parseError(tooLarge.bytes))
        #expect(error.isInvalid && error.field == "tensor 'w' dimension 0")
    }

    @Test func moreThanFourDimensionsAreRefused() throws {
        var bytes = GGUFBytes()
        bytes.header(tensors: 1, metadata: 0)
        bytes.tensorInfo("w", dimensions: [1, 1, 1, 1, 1], type: GGMLType.f32.rawValue, offset: 0)
        let error = try #require(parseError(bytes.bytes))
        #expect(error.isInvalid && error.field == "tensor 'w' dimension count")
    }

    @Test func rowsThatSplitABlockAreRefused() throws {
        var bytes = GGUFBytes()
        bytes.header(tensors: 1, metadata: 0)
        bytes.tensorInfo("w", dimensions: [16, 2], type: GGMLType.q8_0.rawValue, offset: 0)
        bytes.pad(to: 32)
        bytes.append(raw: [UInt8](repeating: 0, count: 64))
        let error = try #require(parseError(bytes.bytes))
        #expect(error.isInvalid && error.field == "tensor 'w' shape" && error.description.contains("Q8_0 blocks of 32"), "\(error)")
    }

    @Test func unknownTensorAndValueTypesAreRefused() throws {
        var tensor = GGUFBytes()
        tensor.header(tensors: 1, metadata: 0)
        tensor.tensorInfo("w", dimensions: [4], type: 99, offset: 0)
        let tensorError = try #require(parseError(tensor.bytes))
        #expect(tensorError.isUnsupported && tensorError.field == "tensor 'w' type" && tensorError.description.contains("99"))

        var value = GGUFBytes()
        value.header(tensors: 0, metadata: 1)
        value.string("general.name")
        value.append(UInt32(13))
        value.append(UInt64(0))
        let valueError = try #require(parseError(value.bytes))
        #expect(valueError.isInvalid && valueError.field == "metadata key 0 'general.name' type")

        var element = GGUFBytes()
        element.header(tensors: 0, metadata: 1)
        element.string("general.tags")
        element.append(GGUFValueType.array.rawValue)
        element.append(UInt32(42))
        element.append(UInt64(0))
        let elementError = try #require(parseError(element.bytes))
        #expect(elementError.isInvalid && elementError.field == "metadata key 0 'general.tags' value element type")
    }

    @Test func invalidUTF8IsRefusedNamingTheKeyIndex() throws {
        var key = GGUFBytes()
        key.header(tensors: 0, metadata: 2)
        key.entry("general.name", .string("ok"))
        key.rawString([0x67, 0xFF, 0x2E])
        key.append(GGUFValueType.uint8.rawValue)
        key.append(UInt8(1))
        #expect(parseError(key.bytes) == .invalid(file: "test.gguf", field: "metadata key 1", reason: "not valid UTF-8"))

        var value = GGUFBytes()
        value.header(tensors: 0, metadata: 1)
        value.string("tokenizer.ggml.tokens")
        value.append(GGUFValueType.array.rawValue)
        value.append(GGUFValueType.string.rawValue)
        value.append(UInt64(2))
        value.string("fine")
        value.rawString([0xC3, 0x28])
        #expect(parseError(value.bytes)
            == .invalid(file: "test.gguf", field: "metadata key 0 'tokenizer.ggml.tokens' value[1]", reason: "not valid UTF-8"))

        var name = GGUFBytes()
        name.header(tensors: 1, metadata: 0)
        name.rawString([0xED, 0xA0, 0x80])  // an encoded UTF-16 surrogate
        name.append(raw: [UInt8](repeating: 0, count: 32))
        #expect(parseError(name.bytes)?.field == "tensor 0 name")
    }

    @Test func duplicateKeysAndTensorNamesAreRefused() throws {
        let keys = sampleFile(metadata: [("general.name", .string("a")), ("general.name", .string("b"))], tensors: [])
        let keyError = try #require(parseError(keys))
        #expect(keyError.isInvalid && keyError.field == "metadata key 1 'general.name'" && keyError.description.contains("metadata key 0"))

        let tensors = sampleFile(metadata: [], tensors: [sampleTensors[1], sampleTensors[1]])
        let tensorError = try #require(parseError(tensors))
        #expect(tensorError.isInvalid && tensorError.field == "tensor 1 'blk.0.attn_norm.weight'")
    }

    @Test(arguments: [GGUFValue.uint32(0), .uint32(3), .uint32(48), .uint32(1 << 31 | 1), .uint64(32), .int32(32), .string("32")])
    func badAlignmentValuesAreRefused(value: GGUFValue) throws {
        let error = try #require(parseError(sampleFile(metadata: [("general.alignment", value)], tensors: [])))
        #expect(error.isInvalid && error.field == "metadata key 0 'general.alignment'", "\(error)")
    }

    @Test func emptyKeysAndBoolsOtherThanZeroOrOneAreRefused() throws {
        let empty = try #require(parseError(sampleFile(metadata: [("", .uint8(1))], tensors: [])))
        #expect(empty.isInvalid && empty.field == "metadata key 0")

        var bool = GGUFBytes()
        bool.header(tensors: 0, metadata: 1)
        bool.string("tokenizer.ggml.add_bos_token")
        bool.append(GGUFValueType.bool.rawValue)
        bool.append(UInt8(2))
        let boolError = try #require(parseError(bool.bytes))
        #expect(boolError.isInvalid && boolError.field == "metadata key 0 'tokenizer.ggml.add_bos_token' value")
    }

    @Test func tensorNamesLongerThanGGMLHoldsAreRefused() throws {
        let fits = SampleTensor(name: String(repeating: "n", count: 63), dimensions: [1], type: .f32, data: [0, 0, 0, 0])
        #expect(try parse(sampleFile(metadata: [], tensors: [fits])).tensors[0].name.count == 63)
        var long = fits
        long.name += "n"
        let error = try #require(parseError(sampleFile(metadata: [], tensors: [long])))
        #expect(error.isInvalid && error.field == "tensor 0 name")
    }

    @Test func arraysNestedDeeperThanTheLimitAreRefused() throws {
        func nested(_ depth: Int) -> GGUFValue {
            depth == 1 ? .array(elementType: .uint8, [.uint8(1)]) : .array(elementType: .array, [nested(depth - 1)])
        }
        #expect(throws: Never.self) { try parse(sampleFile(metadata: [("deep", nested(GGUFFormat.maxArrayNesting))], tensors: [])) }
        let error = try #require(parseError(sampleFile(metadata: [("deep", nested(GGUFFormat.maxArrayNesting + 1))], tensors: [])))
        #expect(error.isUnsupported)

        // Thousands of levels in a few kilobytes must not exhaust the stack.
        var hostile = GGUFBytes()
        hostile.header(tensors: 0, metadata: 1)
        hostile.string("deep")
        hostile.append(GGUFValueType.array.rawValue)
        for _ in 0..<5000 {
            hostile.append(GGUFValueType.array.rawValue)
            hostile.append(UInt64(1))
        }
        #expect(parseError(hostile.bytes)?.isUnsupported == true)
    }

    @Test func theDataSectionMustStartInsideTheFile() throws {
        var bytes = GGUFBytes()
        bytes.header(tensors: 1, metadata: 0)
        bytes.tensorInfo("e", dimensions: [0], type: GGMLType.f32.rawValue, offset: 0)
        // No padding: the aligned data section would start past the end.
        let error = try #require(parseError(bytes.bytes))
        #expect(error.isTruncated && error.field == "padding before the tensor data")
    }
}
