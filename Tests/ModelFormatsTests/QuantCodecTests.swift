import Foundation
import Testing
@testable import ModelFormats

/// Properties of the Q8_0 / Q4_0 encoders, the block layouts and the dispatch's errors.
@Suite struct QuantCodecTests {
    // MARK: - Zeros and round trips

    @Test(arguments: [GGMLType.q8_0, .q4_0], [0.5, 0.7])
    func exactZerosStayExactZerosOnSparseData(_ type: GGMLType, zeroFraction: Float) throws {
        var random = TestRandom(seed: 0x2E80 + UInt64(zeroFraction * 10) + UInt64(type.rawValue))
        let x = sparseValues(count: 64 * 1024, zeroFraction: zeroFraction, random: &random)
        let decoded = try decode(type, try encode(type, x), count: x.count)
        let zeros = x.indices.filter { x[$0] == 0 }
        #expect(Double(zeros.count) / Double(x.count) > Double(zeroFraction) - 0.02)
        let lost = zeros.filter { decoded[$0] != 0 }
        #expect(lost.isEmpty, "\(type): \(lost.count) zeros decoded as nonzero, e.g. element \(lost.first ?? -1) = \(lost.first.map { decoded[$0] } ?? 0)")
    }

    @Test func q8_0DecodesAZeroAsPositiveZero() throws {
        var random = TestRandom(seed: 8)
        let x = sparseValues(count: 4096, zeroFraction: 0.5, random: &random)
        let decoded = try decode(.q8_0, try encode(.q8_0, x), count: x.count)
        #expect(x.indices.allSatisfy { x[$0] != 0 || decoded[$0].bitPattern == 0 })
    }

    @Test func q4_0EncodesAZeroAsTheMiddleCode() throws {
        // Largest magnitude positive → d < 0; negative → d > 0. Either way a zero is code 8.
        for peak: Float in [3, -3] {
            var x = [Float](repeating: 0, count: 32)
            x[5] = peak
            x[20] = peak / 3
            let block = try encode(.q4_0, x)
            for j in 0..<16 where j != 5 {
                #expect(block[2 + j] & 0x0F == 8, "element \(j)")
            }
            for j in 16..<32 where j != 20 {
                #expect(block[2 + j - 16] >> 4 == 8, "element \(j)")
            }
        }
    }

    @Test func aBlockOfZerosEncodesToAZeroStepAndDecodesToZeros() throws {
        for type in [GGMLType.q8_0, .q4_0] {
            let block = try encode(type, [Float](repeating: 0, count: 32))
            // Q4_0's d = max / -8 is -0.0 here, as in ggml; either zero decodes every code to zero.
            #expect(Float16(bitPattern: UInt16(block[0]) | UInt16(block[1]) << 8) == 0, "\(type) step")
            #expect(try decode(type, block, count: 32).allSatisfy { $0 == 0 })
        }
    }

    @Test(arguments: [GGMLType.q8_0, .q4_0])
    func roundTripErrorStaysWithinOneStep(_ type: GGMLType) throws {
        var random = TestRandom(seed: 0x7217 + UInt64(type.rawValue))
        let x = (0..<8192).map { _ in (random.unit() - 0.5) * 4 }
        let blocks = try encode(type, x)
        let decoded = try decode(type, blocks, count: x.count)
        // Q8_0 rounds to the nearest of ±127 steps; Q4_0 can be a full step off
        // where the value opposite the peak clamps to code 15.
        let allowed: Float = type == .q8_0 ? 0.57 : 1.01
        for block in 0..<x.count / 32 {
            let d = abs(Float(Float16(bitPattern: UInt16(blocks[block * type.bytesPerBlock])
                | UInt16(blocks[block * type.bytesPerBlock + 1]) << 8)))
            for j in block * 32..<(block + 1) * 32 {
                #expect(abs(decoded[j] - x[j]) <= allowed * d, "\(type) element \(j): \(x[j]) → \(decoded[j]), step \(d)")
            }
        }
    }

    @Test func nonFiniteInputsEncodeWithoutTrapping() throws {
        var x = [Float](repeating: 1, count: 64)
        x[3] = .nan
        x[40] = .infinity
        for type in [GGMLType.q8_0, .q4_0] {
            #expect(try encode(type, x).count == 2 * type.bytesPerBlock)
        }
    }

    // MARK: - Layouts

    @Test(arguments: QuantFixtureTests.quantisedTypes)
    func eachBlockLayoutFillsTheTableSizeExactly(_ type: GGMLType) throws {
        let decoder = try #require(blockDecoder(for: type))
        #expect(decoder.type == type)
        #expect(decoder.fields.map(\.bytes).reduce(0, +) == type.bytesPerBlock, "\(type)")
    }

    @Test func namedFieldOffsetsFollowTheFieldOrder() throws {
        func offset(_ name: String, _ type: GGMLType) throws -> Int {
            var offset = 0
            for field in try #require(blockDecoder(for: type)).fields {
                if field.name == name { return offset }
                offset += field.bytes
            }
            return -1
        }
        let named: [(GGMLType, [String: Int])] = [
            (.q8_0, ["d": Q8_0.dOffset, "qs": Q8_0.qsOffset]),
            (.q8_1, ["d": Q8_1.dOffset, "qs": Q8_1.qsOffset]),
            (.q4_0, ["d": Q4_0.dOffset, "qs": Q4_0.qsOffset]),
            (.q4_1, ["d": Q4_1.dOffset, "m": Q4_1.mOffset, "qs": Q4_1.qsOffset]),
            (.q5_0, ["d": Q5_0.dOffset, "qh": Q5_0.qhOffset, "qs": Q5_0.qsOffset]),
            (.q5_1, ["d": Q5_1.dOffset, "m": Q5_1.mOffset, "qh": Q5_1.qhOffset, "qs": Q5_1.qsOffset]),
            (.q2_K, ["scales": Q2_K.scalesOffset, "qs": Q2_K.qsOffset, "d": Q2_K.dOffset, "dmin": Q2_K.dminOffset]),
            (.q3_K, ["hmask": Q3_K.hmaskOffset, "qs": Q3_K.qsOffset, "scales": Q3_K.scalesOffset, "d": Q3_K.dOffset]),
            (.q4_K, ["d": Q4_K.dOffset, "dmin": Q4_K.dminOffset, "scales": Q4_K.scalesOffset, "qs": Q4_K.qsOffset]),
            (.q5_K, ["d": Q5_K.dOffset, "dmin": Q5_K.dminOffset, "scales": Q5_K.scalesOffset,
                     "qh": Q5_K.qhOffset, "qs": Q5_K.qsOffset]),
            (.q6_K, ["ql": Q6_K.qlOffset, "qh": Q6_K.qhOffset, "scales": Q6_K.scalesOffset, "d": Q6_K.dOffset]),
            (.q8_K, ["d": Q8_K.dOffset, "qs": Q8_K.qsOffset]),
        ]
        #expect(Set(named.map(\.0)) == Set(QuantFixtureTests.quantisedTypes))
        for (type, offsets) in named {
            for (name, value) in offsets {
                #expect(try offset(name, type) == value, "\(type).\(name)")
            }
        }
    }

    // MARK: - Errors

    @Test func aByteCountThatDoesNotMatchTheElementsThrows() throws {
        let blocks = [UInt8](repeating: 0, count: 3 * 20)
        #expect(throws: QuantizationError.sizeMismatch(type: .q4_1, elements: 64, bytes: 60)) {
            _ = try decode(.q4_1, blocks, count: 64)
        }
        #expect(throws: QuantizationError.sizeMismatch(type: .q4_1, elements: 95, bytes: 60)) {
            _ = try decode(.q4_1, blocks, count: 95)
        }
        var out = [UInt8](repeating: 0, count: 33)
        let x = [Float](repeating: 1, count: 32)
        #expect(throws: QuantizationError.sizeMismatch(type: .q8_0, elements: 32, bytes: 33)) {
            try x.withUnsafeBufferPointer { source in
                try out.withUnsafeMutableBytes { try quantize(.q8_0, from: source.baseAddress!, count: 32, into: $0) }
            }
        }
    }

    @Test func typesLosadCannotDecodeThrowUnsupportedType() throws {
        for type in GGMLType.allCases where !type.canDequantize {
            let blocks = [UInt8](repeating: 0, count: type.bytesPerBlock)
            #expect(throws: QuantizationError.unsupportedType(type)) {
                _ = try decode(type, blocks, count: type.blockSize)
            }
        }
        #expect(!GGMLType.iq2_xs.canDequantize && !GGMLType.tq2_0.canDequantize && !GGMLType.iq4_nl.canDequantize)
        let message = QuantizationError.unsupportedType(.iq2_xs).description
        #expect(message.contains("IQ2_XS") && message.contains("Q4_K"), "\(message)")
    }

    @Test func onlyQ8_0AndQ4_0AmongTheBlockTypesCanBeEncoded() throws {
        for type in [GGMLType.q4_1, .q5_0, .q5_1, .q8_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .iq4_xs] {
            #expect(throws: QuantizationError.unsupportedType(type)) {
                _ = try encode(type, [Float](repeating: 0, count: type.blockSize))
            }
        }
    }
}

/// `count` values of random sign and magnitude (1e-8 to 1e4, log-uniform),
/// about `zeroFraction` of them exactly zero.
func sparseValues(count: Int, zeroFraction: Float, random: inout TestRandom) -> [Float] {
    (0..<count).map { _ in
        if random.unit() < zeroFraction { return random.unit() < 0.5 ? 0 : -0.0 }
        let magnitude = Float(pow(10, Double(-8 + 12 * random.unit())))
        return random.unit() < 0.5 ? -magnitude : magnitude
    }
}
