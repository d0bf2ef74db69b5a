import Foundation
import Testing
@testable import ModelFormats

/// Our codecs against llama.cpp's Python codecs (the `gguf` package), through
/// fixtures made by scripts/fixtures/quant_make_fixtures.py.
@Suite struct QuantFixtureTests {
    static let quantisedTypes: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1,
                                             .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K]

    @Test func theFixturesAreInTheFormatThisTestReads() throws {
        let index = try QuantFixtures.index()
        #expect(index.formatVersion == QuantFixtures.formatVersion,
                "fixtures have format \(index.formatVersion); regenerate them with \(index.generator)")
        #expect(Set(index.dequantize.map(\.ggmlType)) == Set(Self.quantisedTypes.map(\.rawValue)))
        #expect(Set(index.quantize.map(\.ggmlType)) == [GGMLType.q8_0.rawValue, GGMLType.q4_0.rawValue])
        for entry in index.dequantize {
            #expect(entry.type == GGMLType(rawValue: entry.ggmlType)?.description, "\(entry.type)")
        }
    }

    @Test(arguments: quantisedTypes)
    func everyBlockDecodesToTheGGUFPackagesFloatsBitForBit(_ type: GGMLType) throws {
        let entry = try #require(try QuantFixtures.index().dequantize.first { $0.ggmlType == type.rawValue })
        let blocks = try QuantFixtures.bytes(entry.data)
        let expected = try QuantFixtures.floats(entry.expected)
        #expect(blocks.count == entry.blocks * type.bytesPerBlock)
        #expect(expected.count == entry.elements && entry.elements == entry.blocks * type.blockSize)
        for path in [DecodePath.reference, .fast] {
            let decoded = try decode(type, blocks, count: expected.count, path: path)
            expectSameBits(decoded, expected, "\(entry.type) \(path) vs \(entry.expectedBy)")
        }
    }

    @Test(arguments: [GGMLType.q8_0, .q4_0])
    func quantisingGivesTheGGUFPackagesBytes(_ type: GGMLType) throws {
        let entry = try #require(try QuantFixtures.index().quantize.first { $0.ggmlType == type.rawValue })
        let input = try QuantFixtures.floats(entry.input)
        let expected = try QuantFixtures.bytes(entry.expected)
        #expect(input.count == entry.elements)
        let encoded = try encode(type, input)
        #expect(encoded.count == expected.count)
        let mismatch = zip(encoded, expected).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(mismatch == nil, "\(entry.type): first differing byte \(mismatch.map { "\($0.offset): \($0.element.0) vs \($0.element.1)" } ?? "")")
    }
}

// MARK: - Fixture files

/// The fixture index (`Fixtures/quants/index.json`) and its files.
enum QuantFixtures {
    static let formatVersion = 1

    struct Index: Decodable {
        var formatVersion: Int
        var generator: String
        var dequantize: [Decoding]
        var quantize: [Encoding]

        enum CodingKeys: String, CodingKey {
            case formatVersion = "format_version", generator, dequantize, quantize
        }
    }

    struct Decoding: Decodable {
        var type: String
        var ggmlType: UInt32
        var blocks: Int
        var elements: Int
        var data: String
        var expected: String
        var expectedBy: String

        enum CodingKeys: String, CodingKey {
            case type, ggmlType = "ggml_type", blocks, elements, data, expected, expectedBy = "expected_by"
        }
    }

    struct Encoding: Decodable {
        var type: String
        var ggmlType: UInt32
        var elements: Int
        var input: String
        var expected: String

        enum CodingKeys: String, CodingKey {
            case type, ggmlType = "ggml_type", elements, input, expected
        }
    }

    static func url(_ name: String) throws -> URL {
        let directory = try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures/quants")
        return directory.appendingPathComponent(name)
    }

    static func index() throws -> Index {
        try JSONDecoder().decode(Index.self, from: Data(contentsOf: url("index.json")))
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: url(name)))
    }

    /// Little-endian Float32 values.
    static func floats(_ name: String) throws -> [Float] {
        let data = try bytes(name)
        return stride(from: 0, to: data.count - 3, by: 4).map { i in
            Float(bitPattern: UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16 | UInt32(data[i + 3]) << 24)
        }
    }
}

// MARK: - Helpers shared by the Quant tests

/// Decodes `blocks` of `type` with the chosen path.
func decode(_ type: GGMLType, _ blocks: [UInt8], count: Int, path: DecodePath = .fast) throws -> [Float] {
    var out = [Float](repeating: .nan, count: count)
    try blocks.withUnsafeBytes { source in
        try out.withUnsafeMutableBufferPointer { destination in
            try dequantize(type, from: source, count: count, into: destination.baseAddress!, path: path)
        }
    }
    return out
}

/// Encodes `values` as `type`.
func encode(_ type: GGMLType, _ values: [Float]) throws -> [UInt8] {
    var out = [UInt8](repeating: 0xAA, count: type.byteCount(elements: values.count) ?? 0)
    try values.withUnsafeBufferPointer { source in
        try out.withUnsafeMutableBytes { destination in
            try quantize(type, from: source.baseAddress!, count: values.count, into: destination)
        }
    }
    return out
}

/// Expects equal bit patterns everywhere, except that any NaN matches any NaN.
func expectSameBits(_ actual: [Float], _ expected: [Float], _ what: String,
                    sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.count, "\(what): \(actual.count) values, expected \(expected.count)",
            sourceLocation: sourceLocation)
    var mismatches = 0
    var first = ""
    for (i, (a, e)) in zip(actual, expected).enumerated() where a.bitPattern != e.bitPattern && !(a.isNaN && e.isNaN) {
        if mismatches == 0 {
            first = "element \(i): \(a) (0x\(String(a.bitPattern, radix: 16))) vs \(e) (0x\(String(e.bitPattern, radix: 16)))"
        }
        mismatches += 1
    }
    #expect(mismatches == 0, "\(what): \(mismatches) values differ; first at \(first)", sourceLocation: sourceLocation)
}
