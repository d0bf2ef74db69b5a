import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// Writing with SafetensorsWriter and reading back with SafetensorsFile.
@Suite struct SafetensorsRoundTripTests {
    @Test func f32ValuesSurviveBitForBitIncludingNaNInfinitiesAndSubnormals() throws {
        let directory = try TemporaryDirectory()
        let patterns: [UInt32] = [0, 0x8000_0000, 0x3F80_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7FA0_0001,
                                  0xFFC1_2345, 0x0000_0001, 0x807F_FFFF, 0x7F7F_FFFF, 0x0080_0000, 0x4049_0FDB]
        let values = patterns.map(Float.init(bitPattern:)) + (0..<51).map { Float($0) * 0.37 - 9 }
        let tensor = Tensor(shape: [8, 8], values: values)
        let path = directory.file("f32.safetensors")
        try SafetensorsWriter.write([.init(name: "w", tensor: tensor, dtype: .f32)], to: path)

        let file = try SafetensorsFile(path: path)
        #expect(file.tensors.map(\.dtype) == [.f32])
        #expect(safetensorsBits(try file.tensor(named: "w")) == safetensorsBits(tensor))
    }

    @Test(arguments: [SafetensorsDType.f16, .bf16])
    func halfPrecisionValuesSurviveIncludingNaNInfinitiesAndSubnormals(_ dtype: SafetensorsDType) throws {
        let directory = try TemporaryDirectory()
        var generator = TestRandom(seed: 7)
        var values: [Float] = [0, -0.0, 1, -2, .infinity, -.infinity, .nan, 65504, -65504, 1e-3, 3.140625]
        // Subnormals of each format: 2^-24 and 2^-20 for F16, 2^-133 for BF16.
        values += dtype == .f16 ? [0x1p-24, -0x1p-20, 0x1.ffp-15] : [0x1p-133, -0x1p-127, Float.greatestFiniteMagnitude]
        values += (0..<(100 - values.count)).map { _ in generator.uniform(-100, 100) }
        // Start from values the format holds exactly, so the round trip must be exact.
        let representable = Tensor(shape: [4, 25], values: values)
        let exact = dtype == .f16
            ? Tensor(shape: [4, 25], float16Bits: representable.float16Bits)
            : Tensor(shape: [4, 25], bfloat16Bits: representable.bfloat16Bits)
        let path = directory.file("half.safetensors")
        try SafetensorsWriter.write([.init(name: "h", tensor: exact, dtype: dtype)], to: path)

        let read = try SafetensorsFile(path: path).tensor(named: "h")
        #expect(read.shape == [4, 25])
        for (got, want) in zip(read.scalars, exact.scalars) {
            if want.isNaN {
                #expect(got.isNaN)
            } else {
                #expect(got.bitPattern == want.bitPattern, "\(got) vs \(want)")
            }
        }
        #expect(try SafetensorsFile(path: path).rawBytes(named: "h").count == 200)
    }

    @Test func narrowingRoundsAsTheKernelsConvertersDo() throws {
        let directory = try TemporaryDirectory()
        let values: [Float] = [1.0001, -3.3333333, 70000, 1e-8, 0.1]
        let tensor = Tensor(shape: [5], values: values)
        let path = directory.file("narrow.safetensors")
        try SafetensorsWriter.write([.init(name: "a", tensor: tensor, dtype: .f16), .init(name: "b", tensor: tensor, dtype: .bf16)],
                                    to: path)
        let file = try SafetensorsFile(path: path)
        #expect(try file.rawBytes(named: "a") == littleEndianBytes(tensor.float16Bits))
        #expect(try file.rawBytes(named: "b") == littleEndianBytes(tensor.bfloat16Bits))
        #expect(try file.tensor(named: "a").scalars == values.map { Float(Float16($0)) })
    }

    @Test func metadataIsKeptIncludingEscapesAndUnicode() throws {
        let directory = try TemporaryDirectory()
        let metadata = ["format": "pt", "quote\"back\\slash": "line\nbreak\ttab\u{01}", "ünïcode ✓": "日本語", "": "empty key"]
        let path = directory.file("meta.safetensors")
        try SafetensorsWriter.write([.init(name: "x", tensor: Tensor(shape: [1], values: [1]))], metadata: metadata, to: path)
        #expect(try SafetensorsFile(path: path).metadata == metadata)
    }

    @Test func emptyTensorsAndScalarsRoundTrip() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("shapes.safetensors")
        try SafetensorsWriter.write([
            .init(name: "empty", tensor: Tensor(zeros: [0]), dtype: .f16),
            .init(name: "scalar", tensor: Tensor(shape: [], values: [2.5]), dtype: .f32),
            .init(name: "hollow", tensor: Tensor(zeros: [2, 0, 3]), dtype: .bf16),
            .init(name: "scalar16", tensor: Tensor(shape: [], values: [-0.5]), dtype: .bf16),
        ], to: path)

        let file = try SafetensorsFile(path: path)
        #expect(file.tensorNames == ["scalar", "empty", "hollow", "scalar16"])
        #expect(file.info(named: "empty")?.byteRange == 4..<4)
        #expect(file.info(named: "scalar")?.shape == [])
        #expect(file.info(named: "scalar")?.elementCount == 1)
        #expect(try file.tensor(named: "scalar").scalars == [2.5])
        #expect(try file.tensor(named: "scalar16").scalars == [-0.5])
        #expect(try file.tensor(named: "hollow").shape == [2, 0, 3])
        #expect(try file.tensor(named: "empty").count == 0)
    }

    @Test func aFileWithNoTensorsIsValid() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("none.safetensors")
        try SafetensorsWriter.write([], to: path)
        let file = try SafetensorsFile(path: path)
        #expect(file.tensors.isEmpty && file.metadata.isEmpty)
    }

    /// The byte-exact examples of the reference crate's tests (safetensors/src/tensor.rs:
    /// test_serialization, test_empty, test_serialization_forced_alignement).
    @Test func theBytesMatchTheReferenceWritersExamples() throws {
        let directory = try TemporaryDirectory()
        let values = Tensor(shape: [1, 2, 3], values: [0, 1, 2, 3, 4, 5])
        let dataBytes: [UInt8] = [0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64]

        let plain = directory.file("plain.safetensors")
        try SafetensorsWriter.write([.init(name: "attn.0", tensor: values)], to: plain)
        let header = #"{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}"#
        #expect(try Data(contentsOf: URL(fileURLWithPath: plain)) == Data([64, 0, 0, 0, 0, 0, 0, 0] + Array(header.utf8) + dataBytes))

        let padded = directory.file("padded.safetensors")
        try SafetensorsWriter.write([.init(name: "attn0", tensor: values.reshaped([1, 1, 2, 3]))], to: padded)
        let paddedHeader = #"{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}"# + "       "
        #expect(try Data(contentsOf: URL(fileURLWithPath: padded)) == Data([72, 0, 0, 0, 0, 0, 0, 0] + Array(paddedHeader.utf8) + dataBytes))

        let empty = directory.file("empty.safetensors")
        try SafetensorsWriter.write([], to: empty)
        #expect(try Data(contentsOf: URL(fileURLWithPath: empty)) == Data([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]))

        let framework = directory.file("framework.safetensors")
        try SafetensorsWriter.write([], metadata: ["framework": "pt"], to: framework)
        let frameworkHeader = #"{"__metadata__":{"framework":"pt"}}"# + "     "
        #expect(try Data(contentsOf: URL(fileURLWithPath: framework)) == Data([40, 0, 0, 0, 0, 0, 0, 0] + Array(frameworkHeader.utf8)))
    }

    @Test func widerTypesComeFirstSoEveryValueIsAlignedAndOtherwiseTheOrderIsKept() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("order.safetensors")
        let names = ["z", "a", "m.weight", "b", "y"]
        let dtypes: [SafetensorsDType] = [.f16, .f32, .bf16, .f32, .f16]
        try SafetensorsWriter.write(names.indices.map { index in
            .init(name: names[index], tensor: Tensor(shape: [index + 1], repeating: Float(index)), dtype: dtypes[index])
        }, to: path)
        let file = try SafetensorsFile(path: path)
        #expect(file.tensorNames == ["a", "b", "z", "m.weight", "y"])
        #expect(file.dataOffset % 8 == 0)
        #expect(file.tensors.map(\.byteRange) == [0..<8, 8..<24, 24..<26, 26..<32, 32..<42])
        for info in file.tensors {
            #expect((file.dataOffset + info.byteRange.lowerBound) % (info.dtype.bitsPerElement / 8) == 0)
            #expect(try file.tensor(named: info.name).scalars == Array(repeating: Float(names.firstIndex(of: info.name)!), count: info.elementCount))
        }

        // A header listing them in another order still yields data order.
        let shuffled = #"{"b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]},"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}"#
        let reordered = try SafetensorsFile(path: "mem.safetensors", contents: safetensorsBytes(header: shuffled, data: [1, 2, 3, 4, 5]))
        #expect(reordered.tensorNames == ["a", "b"])
        #expect(try reordered.tensor(named: "b").scalars == [4, 5])
    }

    @Test func dataAtAnOddOffsetStillConverts() throws {
        // Other writers need not pad the header: here the data starts at byte 8 + 169.
        let header = #"{"h":{"dtype":"F16","shape":[17],"data_offsets":[0,34]},"b":{"dtype":"BF16","shape":[17],"data_offsets":[34,68]},"#
            + #""f":{"dtype":"F32","shape":[3],"data_offsets":[68,80]}} "#
        let values = (0..<17).map { Float($0) - 8.5 }
        let half = Tensor(shape: [17], values: values)
        let f32: [Float] = [1.5, -2, .infinity]
        let data = littleEndianBytes(half.float16Bits) + littleEndianBytes(half.bfloat16Bits)
            + littleEndianBytes(f32.map(\.bitPattern))
        let file = try SafetensorsFile(path: "odd.safetensors", contents: safetensorsBytes(header: header, data: data))
        #expect(file.dataOffset % 2 == 1)
        #expect(try file.tensor(named: "h").scalars == values)
        #expect(try file.tensor(named: "b").scalars == values)
        #expect(try file.tensor(named: "f").scalars == [1.5, -2, .infinity])
    }

    @Test func largeTensorsStreamThroughTheBufferIntact() throws {
        let directory = try TemporaryDirectory()
        var generator = TestRandom(seed: 11)
        // 2.4 MB of F32 (bigger than the 1 MiB write buffer) and F16/BF16 spanning many chunks.
        let big = Tensor(shape: [600, 1000], values: (0..<600_000).map { _ in generator.uniform(-1, 1) })
        let odd = Tensor(shape: [70_001], values: (0..<70_001).map { _ in generator.uniform(-4, 4) })
        let path = directory.file("big.safetensors")
        try SafetensorsWriter.write([
            .init(name: "odd16", tensor: odd, dtype: .f16),
            .init(name: "big", tensor: big, dtype: .f32),
            .init(name: "odd_bf16", tensor: odd, dtype: .bf16),
        ], to: path)
        let file = try SafetensorsFile(path: path)
        #expect(try file.tensor(named: "big").scalars == big.scalars)
        #expect(try file.tensor(named: "odd16").float16Bits == odd.float16Bits)
        #expect(try file.tensor(named: "odd_bf16").bfloat16Bits == odd.bfloat16Bits)
        #expect(file.tensorNames == ["big", "odd16", "odd_bf16"])
        #expect(file.info(named: "odd_bf16")!.byteRange.lowerBound % 4 == 2)
    }

    @Test func aLazyEntryIsProducedWhenWrittenAndMustMatchItsShape() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("lazy.safetensors")
        try SafetensorsWriter.write([.init(name: "l", shape: [2], dtype: .f32) { Tensor(shape: [2], values: [3, 4]) }], to: path)
        #expect(try SafetensorsFile(path: path).tensor(named: "l").scalars == [3, 4])

        let wrong = directory.file("wrong.safetensors")
        let error = modelFormatError {
            try SafetensorsWriter.write([.init(name: "l", shape: [3], dtype: .f32) { Tensor(zeros: [2]) }], to: wrong)
        }
        #expect(error == .invalid(file: wrong, field: "tensor 'l'", reason: "its values have shape [2] but the entry declared [3]"))
        #expect(directory.contents == ["lazy.safetensors"])
    }

    @Test func anExistingFileIsNotReplacedUnlessAsked() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("model.safetensors")
        try SafetensorsWriter.write([.init(name: "v", tensor: Tensor(shape: [1], values: [1]))], to: path)
        let error = modelFormatError {
            try SafetensorsWriter.write([.init(name: "v", tensor: Tensor(shape: [1], values: [2]))], to: path)
        }
        #expect(error?.file == path)
        #expect(try SafetensorsFile(path: path).tensor(named: "v").scalars == [1])

        try SafetensorsWriter.write([.init(name: "v", tensor: Tensor(shape: [1], values: [2]))], to: path, overwrite: true)
        #expect(try SafetensorsFile(path: path).tensor(named: "v").scalars == [2])
        #expect(directory.contents == ["model.safetensors"])
    }

    @Test func aFailedWriteLeavesNeitherTheFileNorATemporaryBehind() throws {
        struct Interrupted: Error {}
        let directory = try TemporaryDirectory()
        let path = directory.file("model.safetensors")
        let entries: [SafetensorsWriter.Entry] = [
            .init(name: "first", tensor: Tensor(shape: [1000], repeating: 1)),
            .init(name: "second", shape: [4], dtype: .f32) { throw Interrupted() },
        ]
        #expect(throws: Interrupted.self) { try SafetensorsWriter.write(entries, to: path) }
        #expect(directory.contents.isEmpty)

        // With overwrite, a failure leaves the previous file as it was.
        try SafetensorsWriter.write([.init(name: "old", tensor: Tensor(shape: [1], values: [7]))], to: path)
        #expect(throws: Interrupted.self) { try SafetensorsWriter.write(entries, to: path, overwrite: true) }
        #expect(directory.contents == ["model.safetensors"])
        #expect(try SafetensorsFile(path: path).tensorNames == ["old"])
    }

    @Test func theWriterRefusesDuplicateReservedAndUnwritableEntries() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("bad.safetensors")
        let one = Tensor(shape: [1], values: [1])
        #expect(modelFormatError { try SafetensorsWriter.write([.init(name: "a", tensor: one), .init(name: "a", tensor: one)], to: path) }
            == .invalid(file: path, field: "tensor 'a'", reason: "the name appears twice"))
        #expect(modelFormatError { try SafetensorsWriter.write([.init(name: "__metadata__", tensor: one)], to: path) }?.field
            == "tensor '__metadata__'")
        #expect(modelFormatError { try SafetensorsWriter.write([.init(name: "q", tensor: one, dtype: .i8)], to: path) }
            == .unsupported(file: path, field: "tensor 'q' dtype", reason: "losad writes F32, F16 and BF16 tensors, not I8"))
        #expect(directory.contents.isEmpty)
    }

    @Test func integerTensorsConvertAndOtherTypesAreRefusedButReadableRaw() throws {
        let header = #"{"i":{"dtype":"I8","shape":[3],"data_offsets":[0,3]},"u":{"dtype":"U8","shape":[2],"data_offsets":[3,5]},"#
            + #""d":{"dtype":"F64","shape":[1],"data_offsets":[5,13]}}"#
        let data: [UInt8] = [0x80, 0xFF, 0x05, 0x00, 0xFF] + withUnsafeBytes(of: Double(1.5).bitPattern.littleEndian) { Array($0) }
        let file = try SafetensorsFile(path: "ints.safetensors", contents: safetensorsBytes(header: header, data: data))
        #expect(try file.tensor(named: "i").scalars == [-128, -1, 5])
        #expect(try file.tensor(named: "u").scalars == [0, 255])
        #expect(modelFormatError { _ = try file.tensor(named: "d") }
            == .unsupported(file: "ints.safetensors", field: "tensor 'd' dtype",
                            reason: "losad converts F32, F16, BF16, I8 and U8 tensors to Float32, not F64"))
        #expect(try file.rawBytes(named: "d") == Array(data[5...]))
        #expect(modelFormatError { _ = try file.tensor(named: "missing") }
            == .invalid(file: "ints.safetensors", field: "tensor 'missing'", reason: "the file has no tensor of that name"))
    }

    @Test func theDTypeTableSizesEveryReferenceType() {
        #expect(SafetensorsDType.allCases.count == 22)
        #expect(SafetensorsDType.f4.byteCount(elements: 3) == nil)
        #expect(SafetensorsDType.f4.byteCount(elements: 4) == 2)
        #expect(SafetensorsDType.f6E2M3.byteCount(elements: 4) == 3)
        #expect(SafetensorsDType.c64.byteCount(elements: 2) == 16)
        #expect(SafetensorsDType.f32.byteCount(elements: Int.max / 2) == nil)
        #expect(SafetensorsDType.allCases.filter(\.isWritable) == [.f16, .bf16, .f32])
    }
}

// MARK: - Helpers shared by the Safetensors tests

/// A safetensors file image: the little-endian header length, `header`, then `data`.
func safetensorsBytes(header: String, data: [UInt8] = []) -> [UInt8] {
    let json = Array(header.utf8)
    return littleEndianBytes([UInt64(json.count)]) + json + data
}

func safetensorsBits(_ tensor: Tensor) -> [UInt32] { tensor.scalars.map(\.bitPattern) }
