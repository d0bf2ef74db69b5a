import Foundation
import Synchronization
import Kernels
import Testing
@testable import ModelFormats

/// Every metadata value type, arrays of each, an empty array and arrays of arrays.
let everyValueType: [(String, GGUFValue)] = [
    ("general.architecture", .string("llama")),
    ("test.uint8", .uint8(.max)), ("test.int8", .int8(.min)),
    ("test.uint16", .uint16(.max)), ("test.int16", .int16(.min)),
    ("test.uint32", .uint32(.max)), ("test.int32", .int32(.min)),
    ("test.uint64", .uint64(.max)), ("test.int64", .int64(.min)),
    ("test.float32", .float32(-1.5e-7)), ("test.float64", .float64(.pi)),
    ("test.bool.true", .bool(true)), ("test.bool.false", .bool(false)),
    ("test.string", .string("ünïcödé 🙂 and \"quotes\"")), ("test.string.empty", .string("")),
    ("test.array.uint8", .array(elementType: .uint8, [.uint8(0), .uint8(255)])),
    ("test.array.int64", .array(elementType: .int64, [.int64(.min), .int64(.max)])),
    ("test.array.float32", .array(elementType: .float32, [.float32(0.25), .float32(-0)])),
    ("test.array.float64", .array(elementType: .float64, [.float64(1e300)])),
    ("test.array.bool", .array(elementType: .bool, [.bool(true), .bool(false)])),
    ("test.array.string", .array(elementType: .string, [.string("<s>"), .string(""), .string("▁the")])),
    ("test.array.empty", .array(elementType: .int32, [])),
    ("test.array.nested", .array(elementType: .array, [
        .array(elementType: .uint16, [.uint16(1), .uint16(2)]),
        .array(elementType: .string, [.string("x")]),
        .array(elementType: .array, [.array(elementType: .float64, [.float64(2)])]),
    ])),
]

/// Values spread over a range, deterministic.
func ramp(_ count: Int, scale: Float = 0.01) -> [Float] {
    (0..<count).map { Float($0 % 97 - 48) * scale + Float($0 % 7) * 0.001 }
}

@Suite struct GGUFWriterTests {
    @Test func everyMetadataTypeRoundTripsIncludingNestedArrays() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("meta.gguf")
        let writer = GGUFWriter(metadata: GGUFMetadata(everyValueType.map { (key: $0.0, value: $0.1) }))
        try writer.write(to: path)
        let file = try GGUFFile(path: path)
        #expect(file.version == 3)
        #expect(file.metadata == writer.metadata)
        #expect(file.metadata.keys == everyValueType.map(\.0))
    }

    @Test func metadataKeepsItsOrderAndReplacedKeysKeepTheirPlace() throws {
        let directory = try TemporaryDirectory()
        let original = directory.file("original.gguf")
        try GGUFWriter(metadata: GGUFMetadata(sampleMetadata.map { (key: $0.0, value: $0.1) })).write(to: original)
        let read = try GGUFFile(path: original)

        var writer = GGUFWriter(metadata: read.metadata)
        writer.metadata["general.name"] = .string("tiny, sparsified")
        writer.metadata["losa.sparsity"] = .float32(0.5)
        writer.metadata["losa.method"] = .string("wanda")
        writer.metadata["losa.job_id"] = .string("job-42")
        writer.metadata["tokenizer.ggml.add_bos_token"] = nil
        let output = directory.file("sparse.gguf")
        try writer.write(to: output)

        let written = try GGUFFile(path: output)
        let expectedKeys = sampleMetadata.map(\.0).filter { $0 != "tokenizer.ggml.add_bos_token" }
            + ["losa.sparsity", "losa.method", "losa.job_id"]
        #expect(written.metadata.keys == expectedKeys)
        #expect(written.metadata["general.name"] == .string("tiny, sparsified"))
        #expect(written.metadata["losa.sparsity"] == .float32(0.5))
        #expect(written.metadata["tokenizer.ggml.tokens"] == read.metadata["tokenizer.ggml.tokens"])
    }

    @Test func float32TensorsAreStoredAsF32F16AndBF16() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("tensors.gguf")
        let values = Tensor(shape: [3, 8], values: ramp(24))
        var writer = GGUFWriter()
        writer.addTensor(named: "a.f32", values, as: .f32)
        writer.addTensor(named: "a.f16", values, as: .f16)
        writer.addTensor(named: "a.bf16", values, as: .bf16)
        writer.addTensor(named: "vector", Tensor(shape: [5], values: [1, 2, 3, 4, 5]), as: .f32)
        try writer.write(to: path)

        let file = try GGUFFile(path: path)
        #expect(file.tensors.map(\.name) == ["a.f32", "a.f16", "a.bf16", "vector"])
        #expect(file.tensors.map(\.type) == [.f32, .f16, .bf16, .f32])
        #expect(file.tensorInfo(named: "a.f16")?.dimensions == [8, 3])
        #expect(try file.tensor(named: "a.f32").scalars == values.scalars)
        #expect(try file.tensor(named: "vector").shape == [5])
        for type in [GGMLType.f16, .bf16] {
            // What the dispatch itself makes of the values, bit for bit.
            var encoded = [UInt8](repeating: 0, count: type.byteCount(elements: 24)!)
            try encoded.withUnsafeMutableBytes { try quantize(type, from: values.scalars, count: 24, into: $0) }
            let name = "a.\(type == .f16 ? "f16" : "bf16")"
            #expect(Array(file.rawBytes(of: file.tensorInfo(named: name)!)) == encoded)
            let read = try file.tensor(named: name)
            #expect(read.shape == [3, 8])
            for (got, want) in zip(read.scalars, values.scalars) {
                #expect(abs(got - want) <= abs(want) * (type == .f16 ? 1e-3 : 8e-3) + 1e-6)
            }
        }
    }

    @Test(arguments: [GGMLType.q4_K, .q6_K, .iq2_xs])
    func typesLosadCannotEncodeAreRefusedBeforeWriting(type: GGMLType) throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("quantized.gguf")
        var writer = GGUFWriter()
        writer.addTensor(named: "w", Tensor(shape: [2, 256], values: ramp(512)), as: type)
        let error = try #require(throws: ModelFormatError.self) { try writer.write(to: path) }
        #expect(error.isUnsupported && error.field == "tensor 'w' type")
        #expect(directory.contents.isEmpty, "nothing is left behind")
    }

    @Test(arguments: [GGMLType.q8_0, .q4_0])
    func blockTypesEncodeThroughTheDispatch(type: GGMLType) throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("quantized.gguf")
        let values = Tensor(shape: [2, 64], values: ramp(128, scale: 0.05))
        var writer = GGUFWriter()
        writer.addTensor(named: "w", values, as: type)
        try writer.write(to: path)
        let file = try GGUFFile(path: path)
        #expect(file.tensors[0].type == type && file.tensors[0].byteCount == type.byteCount(elements: 128))
        let read = try file.tensor(named: "w")
        // Each block of 32 has one scale: the step is its largest magnitude / 127 (Q8_0) or / 8 (Q4_0).
        for block in 0..<4 {
            let range = (block * 32)..<(block * 32 + 32)
            let largest = values.scalars[range].map(abs).max()!
            for index in range {
                #expect(abs(read.scalars[index] - values.scalars[index]) <= largest / (type == .q8_0 ? 127 : 8) * 1.01)
            }
        }
    }

    @Test func preEncodedBytesAreWrittenVerbatim() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("raw.gguf")
        let q4 = (0..<(2 * 18)).map { UInt8(truncatingIfNeeded: $0 * 37 + 5) }
        let i32 = littleEndianBytes([Int32(-1), 7, 1 << 30])
        var writer = GGUFWriter()
        writer.addTensor(named: "blk.0.ffn_down.weight", shape: [2, 32], type: .q4_0, bytes: q4)
        writer.addTensor(named: "positions", shape: [3], type: .i32, bytes: i32)
        try writer.write(to: path)
        let file = try GGUFFile(path: path)
        let info = try #require(file.tensorInfo(named: "blk.0.ffn_down.weight"))
        #expect(info.type == .q4_0 && info.shape == [2, 32] && info.dimensions == [32, 2])
        #expect(Array(file.rawBytes(of: info)) == q4)
        #expect(Array(file.rawBytes(of: file.tensorInfo(named: "positions")!)) == i32)
    }

    @Test func aProducedTensorIsMadeWhenItsTurnComesInAsManyPiecesAsItLikes() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("produced.gguf")
        let bytes = (0..<(3 * 34)).map { UInt8(truncatingIfNeeded: $0 * 13 + 1) }
        let order = Mutex<[String]>([])
        var writer = GGUFWriter()
        writer.addTensor(named: "first", shape: [3, 32], type: .q8_0, byteCount: bytes.count) { write in
            order.withLock { $0.append("first") }
            try bytes[..<40].withUnsafeBytes(write)
            try bytes[40...].withUnsafeBytes(write)
        }
        writer.addTensor(named: "second", shape: [2], type: .i32, byteCount: 8) { write in
            order.withLock { $0.append("second") }
            try littleEndianBytes([Int32(5), -6]).withUnsafeBytes(write)
        }
        #expect(order.withLock { $0 }.isEmpty, "nothing is produced before the write")
        try writer.write(to: path)
        #expect(order.withLock { $0 } == ["first", "second"])
        let file = try GGUFFile(path: path)
        #expect(Array(file.rawBytes(of: file.tensorInfo(named: "first")!)) == bytes)
        #expect(Array(file.rawBytes(of: file.tensorInfo(named: "second")!)) == littleEndianBytes([Int32(5), -6]))
    }

    @Test(arguments: [33, 35])
    func aProducerThatMakesAnotherNumberOfBytesFailsTheWriteAndLeavesNoFile(produced: Int) throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("short.gguf")
        var writer = GGUFWriter()
        writer.addTensor(named: "w", shape: [32], type: .q8_0, byteCount: 34) { write in
            try [UInt8](repeating: 1, count: produced).withUnsafeBytes(write)
        }
        let error = try #require(throws: ModelFormatError.self) { try writer.write(to: path) }
        #expect(error.field == "tensor 'w' data" && error.file == path)
        #expect(directory.contents.isEmpty)
    }

    @Test func aProducedTensorWhoseDeclaredSizeDisagreesWithItsShapeIsRefusedBeforeWriting() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("bad.gguf")
        let called = Mutex(false)
        var writer = GGUFWriter()
        writer.addTensor(named: "w", shape: [32], type: .q8_0, byteCount: 32) { _ in called.withLock { $0 = true } }
        let error = try #require(throws: ModelFormatError.self) { try writer.write(to: path) }
        #expect(error.field == "tensor 'w' data")
        #expect(!called.withLock { $0 } && directory.contents.isEmpty)
    }

    @Test func aTensorCopiedFromAReadFileKeepsItsTypeShapeAndBytes() throws {
        let directory = try TemporaryDirectory()
        let source = directory.file("source.gguf")
        try writeFile(source, Data(sampleFile(metadata: sampleMetadata, tensors: sampleTensors)))
        let read = try GGUFFile(path: source)
        var writer = GGUFWriter(metadata: read.metadata)
        for tensor in read.tensors { writer.addTensor(copying: tensor, from: read) }
        let identical = directory.file("identical.gguf")
        try writer.write(to: identical)
        // The writer lays out and pads like the hand-built original (and gguf-py): byte for byte the same file.
        #expect(try Data(contentsOf: URL(fileURLWithPath: identical)) == Data(contentsOf: URL(fileURLWithPath: source)))

        writer.addTensor(copying: read.tensors[1], from: read, named: "renamed.weight")
        let copy = directory.file("copy.gguf")
        try writer.write(to: copy)

        let written = try GGUFFile(path: copy)
        #expect(written.metadata == read.metadata)
        #expect(written.tensors.map(\.name) == read.tensors.map(\.name) + ["renamed.weight"])
        for (mine, theirs) in zip(written.tensors, read.tensors) {
            #expect(mine.dimensions == theirs.dimensions && mine.type == theirs.type && mine.offset == theirs.offset)
            #expect(Array(written.rawBytes(of: mine)) == Array(read.rawBytes(of: theirs)))
        }
        #expect(Array(written.rawBytes(of: written.tensorInfo(named: "renamed.weight")!)) == Array(read.rawBytes(of: read.tensors[1])))
    }

    @Test(arguments: [1, 8, 32, 64, 256])
    func dataIsPaddedToTheAlignment(alignment: Int) throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("aligned.gguf")
        var writer = GGUFWriter(metadata: GGUFMetadata([(key: "general.architecture", value: .string("llama"))]))
        writer.setAlignment(UInt32(alignment))
        writer.addTensor(named: "odd", Tensor(shape: [3, 5], values: ramp(15)), as: .f16)
        writer.addTensor(named: "one", Tensor(shape: [1], values: [42]), as: .f32)
        writer.addTensor(named: "bf", Tensor(shape: [7], values: ramp(7)), as: .bf16)
        try writer.write(to: path)

        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let file = try GGUFFile(path: path)
        #expect(file.alignment == alignment)
        #expect(file.dataOffset % alignment == 0)
        #expect(bytes.count % alignment == 0, "padding follows the last tensor too")
        var expectedOffset = 0
        for tensor in file.tensors {
            #expect(tensor.offset == expectedOffset)
            expectedOffset = (tensor.offset + tensor.byteCount + alignment - 1) / alignment * alignment
            let padding = bytes[(tensor.fileOffset + tensor.byteCount)..<(file.dataOffset + expectedOffset)]
            #expect(padding.allSatisfy { $0 == 0 })
        }
        #expect(try file.tensor(named: "one").scalars == [42])
    }

    @Test func anExistingFileIsReplacedOnlyWhenAsked() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("out.gguf")
        try writeFile(path, Data("precious".utf8))
        var writer = GGUFWriter()
        writer.metadata["general.name"] = .string("new")
        let error = try #require(throws: ModelFormatError.self) { try writer.write(to: path) }
        guard case .io(let file, _, _) = error else { Issue.record("\(error)"); return }
        #expect(file == path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "precious")
        #expect(directory.contents == ["out.gguf"])

        try writer.write(to: path, replacingExisting: true)
        #expect(try GGUFFile(path: path).metadata["general.name"] == .string("new"))
        #expect(directory.contents == ["out.gguf"])
    }

    @Test func aFileThatAppearsDuringTheWriteIsNotReplaced() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("race.gguf")
        let output = try AtomicOutputFile(destination: path, replacingExisting: false)
        #expect(output.temporaryPath.hasPrefix(directory.path + "/.race.gguf.") && output.temporaryPath.hasSuffix(".tmp"))
        try output.write([1, 2, 3])
        try writeFile(path, Data("other".utf8))
        #expect(throws: ModelFormatError.self) { try output.commit() }
        output.discard()
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "other")
        #expect(directory.contents == ["race.gguf"])
    }

    @Test func anAbandonedOutputRemovesItsTemporaryFile() throws {
        let directory = try TemporaryDirectory()
        do {
            let output = try AtomicOutputFile(destination: directory.file("gone.gguf"), replacingExisting: false)
            try output.write([UInt8](repeating: 7, count: 3 << 20))
            #expect(directory.contents.count == 1 && directory.contents[0].hasPrefix(".gone.gguf."))
        }
        #expect(directory.contents.isEmpty)
    }

    @Test func aMissingDestinationFolderIsAnIOError() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("no/such/folder/x.gguf")
        let error = try #require(throws: ModelFormatError.self) { try GGUFWriter().write(to: path) }
        guard case .io(let file, _, _) = error else { Issue.record("\(error)"); return }
        #expect(file == path)
    }

    @Test func theWriterRefusesWhatTheReaderWouldRefuse() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("bad.gguf")
        let one = Tensor(shape: [4], values: [1, 2, 3, 4])
        func refusal(_ configure: (inout GGUFWriter) -> Void) -> ModelFormatError? {
            var writer = GGUFWriter()
            configure(&writer)
            do {
                try writer.write(to: path)
                Issue.record("the writer wrote it")
            } catch let error as ModelFormatError {
                return error
            } catch {
                Issue.record("untyped error \(error)")
            }
            return nil
        }
        #expect(refusal { $0.addTensor(named: "w", one, as: .f32); $0.addTensor(named: "w", one, as: .f16) }?.field == "tensor 'w'")
        #expect(refusal { $0.addTensor(named: String(repeating: "n", count: 64), one, as: .f32) }?.isInvalid == true)
        #expect(refusal { $0.addTensor(named: "w", Tensor(shape: [1, 1, 1, 1, 4], repeating: 0), as: .f32) }?.field == "tensor 'w' shape")
        #expect(refusal { $0.addTensor(named: "w", shape: [2, 16], type: .q8_0, bytes: [UInt8](repeating: 0, count: 34)) }?.field == "tensor 'w' shape")
        #expect(refusal { $0.addTensor(named: "w", shape: [32], type: .q8_0, bytes: [UInt8](repeating: 0, count: 33)) }?.field == "tensor 'w' data")
        #expect(refusal { $0.addTensor(named: "w", shape: [-1, 4], type: .f32, bytes: []) }?.field == "tensor 'w' shape")
        #expect(refusal { $0.setAlignment(48) }?.field == "metadata key 'general.alignment'")
        #expect(refusal { $0.metadata["general.alignment"] = .uint64(32) }?.field == "metadata key 'general.alignment'")
        #expect(refusal { $0.metadata[""] = .bool(true) }?.field == "metadata key 0")
        #expect(refusal { $0.metadata["k"] = .array(elementType: .int32, [.int32(1), .uint32(2)]) }?.field == "metadata key 0 'k' value[1]")
        #expect(refusal { $0.addTensor(named: "w", one, as: .iq2_xxs) }?.isInvalid == true, "4 is not a whole IQ2_XXS block")
        #expect(directory.contents.isEmpty)
    }

    @Test func largeTensorsAreEncodedInChunksWithTheSameResult() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("large.gguf")
        // 12 MB of Float32, three times the writer's chunk.
        let values = Tensor(shape: [1500, 2000], values: ramp(3_000_000))
        var writer = GGUFWriter()
        writer.addTensor(named: "big.f32", values, as: .f32)
        writer.addTensor(named: "big.f16", values, as: .f16)
        try writer.write(to: path)
        let file = try GGUFFile(path: path)
        #expect(try file.tensor(named: "big.f32").scalars == values.scalars)
        var whole = [UInt8](repeating: 0, count: 6_000_000)
        try whole.withUnsafeMutableBytes { try quantize(.f16, from: values.scalars, count: 3_000_000, into: $0) }
        #expect(Array(file.rawBytes(of: file.tensorInfo(named: "big.f16")!)) == whole)
    }
}
