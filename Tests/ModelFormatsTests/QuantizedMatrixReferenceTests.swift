import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// The C product kernels' row decoders (Kernels' QuantizedMatrix) held to ModelFormats' reference
/// decoders and to the gguf package's fixtures, bit for bit, on every SIMD path this CPU runs.
@Suite struct QuantizedMatrixReferenceTests {
    static let types: [GGMLType] = [.q8_0, .q4_0, .q4_1, .q4_K, .q6_K]

    /// The kernels' name for `type`.
    static func blockType(_ type: GGMLType) throws -> QuantizedBlockType {
        try #require(QuantizedBlockType(ggmlTypeID: Int32(type.rawValue)), "\(type) has no product kernel")
    }

    /// Every row of `blocks` decoded by the C kernels on `path`.
    static func kernelDecode(_ type: GGMLType, _ blocks: [UInt8], rows: Int, path: KernelPath) throws -> [Float] {
        let cols = blocks.count / rows / type.bytesPerBlock * type.blockSize
        let matrix = try QuantizedMatrix(type: try blockType(type), rows: rows, cols: cols, copying: blocks, name: "\(type)")
        var out = [Float](repeating: .nan, count: rows * cols)
        out.withUnsafeMutableBufferPointer { matrix.dequantize(rows: 0..<rows, into: $0.baseAddress!, path: path) }
        return out
    }

    @Test func theKernelsBlockTableAgreesWithGGMLType() throws {
        for type in Self.types {
            let kernel = try Self.blockType(type)
            #expect(kernel.blockSize == type.blockSize && kernel.blockBytes == type.bytesPerBlock, "\(type)")
            #expect(kernel.description == type.description)
        }
        #expect(QuantizedBlockType.allCases.count == Self.types.count)
    }

    @Test(arguments: types)
    func rowsDecodeLikeTheReferenceDecoderBitForBit(_ type: GGMLType) throws {
        var random = TestRandom(seed: 0x9A7E + UInt64(type.rawValue))
        let rows = 5, blocksPerRow = type.blockSize == 32 ? 9 : 3
        var blocks = randomBlocks(type, count: rows * blocksPerRow, random: &random, scales: .finite)
        if type.canQuantize {
            // Half the rows from ggml's own quantiser, as a real model's blocks are made.
            let values = (0..<2 * blocksPerRow * type.blockSize).map { _ in random.uniform(-1, 1) * (random.unit() < 0.05 ? 20 : 1) }
            let encoded = try encode(type, values)
            blocks.replaceSubrange(0..<encoded.count, with: encoded)
        }
        let reference = try decode(type, blocks, count: rows * blocksPerRow * type.blockSize, path: .reference)
        for path in KernelPath.supported {
            expectSameBits(try Self.kernelDecode(type, blocks, rows: rows, path: path), reference, "\(type) on \(path)")
        }
    }

    @Test(arguments: types)
    func anyScaleBitsNaNsIncludedDecodeLikeTheReference(_ type: GGMLType) throws {
        var random = TestRandom(seed: 0xB175_0000 + UInt64(type.rawValue))
        let blocks = randomBlocks(type, count: 16, random: &random, scales: .anyBits)
        let reference = try decode(type, blocks, count: 16 * type.blockSize, path: .reference)
        for path in KernelPath.supported {
            expectSameBits(try Self.kernelDecode(type, blocks, rows: 2, path: path), reference, "\(type) on \(path)")
        }
    }

    @Test(arguments: types)
    func theGGUFPackagesFixturesDecodeBitForBit(_ type: GGMLType) throws {
        let entry = try #require(try QuantFixtures.index().dequantize.first { $0.ggmlType == type.rawValue })
        let blocks = try QuantFixtures.bytes(entry.data)
        let expected = try QuantFixtures.floats(entry.expected)
        for path in KernelPath.supported {
            expectSameBits(try Self.kernelDecode(type, blocks, rows: 1, path: path), expected, "\(entry.type) \(path) vs \(entry.expectedBy)")
        }
    }

    @Test(arguments: [GGMLType.q8_0, .q4_0])
    func weightsFromGGMLsQuantiserMultiplyCloseToTheFloatProduct(_ type: GGMLType) throws {
        var random = TestRandom(seed: 0x51 + UInt64(type.rawValue))
        let rows = 6, cols = 512
        let w = (0..<rows * cols).map { _ in random.uniform(-0.1, 0.1) }
        let x = (0..<cols).map { _ in random.uniform(-1, 1) }
        let matrix = try QuantizedMatrix(type: try Self.blockType(type), rows: rows, cols: cols, copying: try encode(type, w), name: "w")
        var act = [UInt8](repeating: 0, count: matrix.activationRowBytes)
        for path in KernelPath.supported {
            var y = [Float](repeating: 0, count: rows)
            x.withUnsafeBufferPointer { xb in
                act.withUnsafeMutableBytes { matrix.quantizeActivations(xb.baseAddress!, tokens: 1, stride: cols, into: $0.baseAddress!, path: path) }
            }
            act.withUnsafeBytes { a in
                y.withUnsafeMutableBufferPointer {
                    matrix.multiply(activations: a.baseAddress!, tokens: 1, into: $0.baseAddress!, ldy: rows, rows: 0..<rows,
                                    accumulate: false, path: path)
                }
            }
            for o in 0..<rows {
                var want = 0.0, scale = 0.0
                for i in 0..<cols {
                    want += Double(w[o * cols + i]) * Double(x[i])
                    scale += abs(Double(w[o * cols + i]) * Double(x[i]))
                }
                // Q8_0 keeps ~7 bits per weight and the activations 7; Q4_0 ~3: a few percent of Σ|w·x|.
                let tolerance = (type == .q8_0 ? 0.01 : 0.08) * scale
                #expect(abs(Double(y[o]) - want) <= tolerance, "\(type) \(path) row \(o): \(y[o]) vs \(want)")
            }
        }
    }
}

