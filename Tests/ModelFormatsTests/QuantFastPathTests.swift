import Testing
@testable import ModelFormats

/// The SIMD, multi-threaded decoders held to the scalar references, bit for bit.
@Suite struct QuantFastPathTests {
    static let quantisedTypes = QuantFixtureTests.quantisedTypes

    @Test(arguments: quantisedTypes)
    func theFastPathMatchesTheReferenceOnRandomBlocks(_ type: GGMLType) throws {
        var random = TestRandom(seed: 0x5EED_0000 + UInt64(type.rawValue))
        // Enough blocks that the pool splits the work into several chunks.
        let blockCount = 4 * parallelElementGrain / type.blockSize + 3
        let blocks = randomBlocks(type, count: blockCount, random: &random, scales: .finite)
        let count = blockCount * type.blockSize
        let fast = try decode(type, blocks, count: count, path: .fast)
        let reference = try decode(type, blocks, count: count, path: .reference)
        expectSameBits(fast, reference, "\(type) fast vs reference")
    }

    @Test(arguments: quantisedTypes)
    func anyBitPatternDecodesAlikeOnBothPathsNaNsIncluded(_ type: GGMLType) throws {
        var random = TestRandom(seed: 0xB175 + UInt64(type.rawValue))
        for blockCount in [1, 2, 7] {
            let blocks = randomBlocks(type, count: blockCount, random: &random, scales: .anyBits)
            let count = blockCount * type.blockSize
            expectSameBits(try decode(type, blocks, count: count, path: .fast),
                           try decode(type, blocks, count: count, path: .reference), "\(type) × \(blockCount)")
        }
    }

    @Test(arguments: quantisedTypes)
    func blocksAtAnOddAddressDecodeTheSame(_ type: GGMLType) throws {
        var random = TestRandom(seed: 0x0DD + UInt64(type.rawValue))
        let blockCount = 5
        let blocks = randomBlocks(type, count: blockCount, random: &random, scales: .finite)
        let count = blockCount * type.blockSize
        let aligned = try decode(type, blocks, count: count, path: .reference)
        let shifted = [0x77] + blocks
        var out = [Float](repeating: 0, count: count + 1)
        try shifted.withUnsafeBytes { raw in
            let source = UnsafeRawBufferPointer(rebasing: raw[1...])
            try out.withUnsafeMutableBufferPointer { destination in
                try dequantize(type, from: source, count: count, into: destination.baseAddress! + 1)
            }
        }
        expectSameBits(Array(out[1...]), aligned, "\(type) at odd addresses")
    }
}

// MARK: - Random blocks

enum ScaleBits {
    /// Finite binary16 (or Float32) scales, realistic or any finite pattern.
    case finite
    /// Every byte random, so scales may be infinite or NaN.
    case anyBits
}

/// The byte offsets of each type's binary16 scale fields (Q8_K: one Float32 at 0).
func scaleOffsets(_ type: GGMLType) -> [Int] {
    switch type {
    case .q4_0, .q5_0, .q8_0: return [0]
    case .q4_1, .q5_1, .q8_1, .q4_K, .q5_K: return [0, 2]
    case .q2_K: return [80, 82]
    case .q3_K: return [108]
    case .q6_K: return [208]
    default: return []
    }
}

/// `count` blocks of random bytes, with scale fields chosen by `scales`.
func randomBlocks(_ type: GGMLType, count: Int, random: inout TestRandom, scales: ScaleBits) -> [UInt8] {
    var bytes = (0..<count * type.bytesPerBlock).map { _ in random.byte() }
    guard scales == .finite else { return bytes }
    for block in 0..<count {
        let base = block * type.bytesPerBlock
        for offset in scaleOffsets(type) {
            var bits: UInt16
            if random.unit() < 0.5 {
                let magnitude = 1e-4 + random.unit() * 0.1
                bits = Float16(random.unit() < 0.5 ? -magnitude : magnitude).bitPattern
            } else {
                bits = UInt16(truncatingIfNeeded: random.next())
                if bits & 0x7C00 == 0x7C00 { bits &= 0x83FF }  // no infinities or NaNs
            }
            bytes[base + offset] = UInt8(truncatingIfNeeded: bits)
            bytes[base + offset + 1] = UInt8(truncatingIfNeeded: bits >> 8)
        }
        if type == .q8_K {
            let d = (random.unit() - 0.5) * 0.2
            for k in 0..<4 { bytes[base + k] = UInt8(truncatingIfNeeded: d.bitPattern >> (8 * k)) }
        }
    }
    return bytes
}
