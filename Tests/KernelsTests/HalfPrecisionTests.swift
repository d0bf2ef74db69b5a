import Foundation
import Testing
@testable import Kernels

/// Float16 and bfloat16 conversions, exhaustively where 2¹⁶ cases allow, against
/// Swift's own Float16, hand-worked bit patterns, and a Double rounding written here.
@Suite struct HalfPrecisionTests {
    static let allPatterns = (0...UInt16.max).map { $0 }

    /// Converts in pieces of `piece` values: below 16 only the scalar tails run, at 4096 the vector loops.
    static func widen(_ bits: [UInt16], piece: Int, _ convert: (UnsafePointer<UInt16>, UnsafeMutablePointer<Float>, Int) -> Void) -> [Float] {
        var result = [Float](repeating: 0, count: bits.count)
        bits.withUnsafeBufferPointer { source in
            result.withUnsafeMutableBufferPointer { destination in
                var start = 0
                while start < bits.count {
                    let count = min(piece, bits.count - start)
                    convert(source.baseAddress! + start, destination.baseAddress! + start, count)
                    start += count
                }
            }
        }
        return result
    }

    static func narrow(_ values: [Float], piece: Int, _ convert: (UnsafePointer<Float>, UnsafeMutablePointer<UInt16>, Int) -> Void) -> [UInt16] {
        var result = [UInt16](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { source in
            result.withUnsafeMutableBufferPointer { destination in
                var start = 0
                while start < values.count {
                    let count = min(piece, values.count - start)
                    convert(source.baseAddress! + start, destination.baseAddress! + start, count)
                    start += count
                }
            }
        }
        return result
    }

    // MARK: - Float16 widening

    /// Decodes binary16 by its definition: sign, 5-bit exponent biased by 15, 10-bit fraction.
    static func decodeBinary16(_ bits: UInt16) -> Double {
        let sign: Double = bits & 0x8000 != 0 ? -1 : 1
        let exponent = Int(bits >> 10) & 0x1F, fraction = Double(bits & 0x3FF)
        switch exponent {
        case 0: return sign * fraction * 0x1p-24
        case 31: return fraction == 0 ? sign * .infinity : .nan
        default: return sign * (1 + fraction / 1024) * pow(2, Double(exponent - 15))
        }
    }

    @Test(arguments: [7, 4096])
    func everyFloat16PatternWidensExactlyLikeSwiftsFloat16(piece: Int) {
        let widened = Self.widen(Self.allPatterns, piece: piece) { convertFloat16ToFloat32($0, $1, count: $2) }
        var mismatches = 0, nanCount = 0
        for bits in Self.allPatterns {
            let value = widened[Int(bits)]
            let swift = Float(Float16(bitPattern: bits)), defined = Self.decodeBinary16(bits)
            if defined.isNaN {
                // Swift's widening quiets a signalling NaN and keeps the payload; so must ours.
                nanCount += 1
                if !value.isNaN || value.bitPattern != swift.bitPattern { mismatches += 1 }
            } else if value.bitPattern != swift.bitPattern || Double(value) != defined {
                mismatches += 1
            }
        }
        #expect(mismatches == 0)
        #expect(nanCount == 2 * 1023)
    }

    // MARK: - Float16 narrowing

    @Test func float16NarrowingRoundsHandWorkedCasesToNearestEven() {
        let cases: [(Float, UInt16)] = [
            (1, 0x3C00), (-2, 0xC000), (0, 0x0000), (-0.0, 0x8000),
            (1 + 0x1p-11, 0x3C00),              // tie between 1 and 1 + 2⁻¹⁰: to the even 1
            (1 + 3 * 0x1p-11, 0x3C02),          // tie between odd 0x3C01 and even 0x3C02
            (Float(bitPattern: (1 + 0x1p-11 as Float).bitPattern + 1), 0x3C01),  // just past the tie
            (65504, 0x7BFF), (65519.996, 0x7BFF),   // largest finite, and just below the overflow tie
            (65520, 0x7C00), (-65520, 0xFC00), (1e6, 0x7C00), (.infinity, 0x7C00), (-.infinity, 0xFC00),
            (0x1p-14, 0x0400),                  // smallest normal
            (0x1p-14 - 0x1p-25, 0x0400),        // tie between 0x03FF and 0x0400: to even
            (0x1p-24, 0x0001),                  // smallest subnormal
            (0x1p-25, 0x0000),                  // tie between 0 and 2⁻²⁴: to even 0
            (Float(0x1p-25).nextUp, 0x0001),
            (3 * 0x1p-25, 0x0002),              // tie between 0x0001 and 0x0002
            (Float.leastNonzeroMagnitude, 0x0000), (-Float.leastNonzeroMagnitude, 0x8000),
        ]
        let narrowed = Self.narrow(cases.map(\.0), piece: 1) { convertFloat32ToFloat16($0, $1, count: $2) }
        for (index, (value, expected)) in cases.enumerated() {
            #expect(narrowed[index] == expected, "\(value) → \(String(narrowed[index], radix: 16)), expected \(String(expected, radix: 16))")
        }
    }

    @Test(arguments: [5, 4096])
    func float16NarrowingMatchesSwiftOnASweepOfAllExponents(piece: Int) {
        // Every 4099th Float32 pattern (~10⁶ values: all exponents, both signs,
        // Float32 and Float16 subnormals, overflow, infinities and NaNs).
        let values = stride(from: UInt64(0), to: 1 << 32, by: 4099).map { Float(bitPattern: UInt32($0)) }
        let narrowed = Self.narrow(values, piece: piece) { convertFloat32ToFloat16($0, $1, count: $2) }
        var mismatches = 0, nanCount = 0
        for (value, bits) in zip(values, narrowed) {
            if value.isNaN {
                nanCount += 1
                if !Float16(bitPattern: bits).isNaN { mismatches += 1 }
            } else if bits != Float16(value).bitPattern {
                mismatches += 1
            }
        }
        #expect(mismatches == 0)
        #expect(nanCount > 1000)
    }

    // MARK: - bfloat16 widening

    @Test(arguments: [9, 4096])
    func everyBFloat16PatternWidensToTheTopHalfOfAFloat(piece: Int) {
        let widened = Self.widen(Self.allPatterns, piece: piece) { convertBFloat16ToFloat32($0, $1, count: $2) }
        let mismatches = Self.allPatterns.filter { widened[Int($0)].bitPattern != UInt32($0) << 16 }
        #expect(mismatches.isEmpty)
        #expect(float32(fromBFloat16: 0x3F80) == 1 && float32(fromBFloat16: 0xC2F7) == -123.5)
    }

    // MARK: - bfloat16 narrowing

    /// Rounds to the nearest bfloat16 by comparing Double distances to the two
    /// neighbours, ties to the even one; past the largest finite value the next
    /// neighbour counts as 2¹²⁸, as IEEE 754's overflow rule has it.
    static func referenceBFloat16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let lower = UInt16(bits >> 16)  // truncation: toward zero
        if bits & 0xFFFF == 0 { return lower }
        let upper = lower + 1           // away from zero, same sign
        let x = abs(Double(value))
        let lowerValue = abs(Double(float32(fromBFloat16: lower)))
        let upperValue = upper & 0x7FFF == 0x7F80 ? 0x1p128 : abs(Double(float32(fromBFloat16: upper)))
        let (down, up) = (x - lowerValue, upperValue - x)
        if down < up { return lower }
        if up < down { return upper }
        return lower & 1 == 0 ? lower : upper
    }

    @Test func bfloat16NarrowingRoundsHandWorkedTiesToEven() {
        let cases: [(UInt32, UInt16)] = [
            (0x3F80_8000, 0x3F80),  // 1 + 2⁻⁸: tie, down to even
            (0x3F81_8000, 0x3F82),  // tie, up to even
            (0x3F80_8001, 0x3F81),  // just past the tie
            (0x3F80_7FFF, 0x3F80),  // just short of it
            (0xBF80_8000, 0xBF80), (0xBF81_8000, 0xBF82),  // the same, negative
            (0x7F7F_7FFF, 0x7F7F),  // below the largest finite bfloat16's upper tie
            (0x7F7F_8000, 0x7F80),  // the tie rounds to the even neighbour: infinity
            (0x7F7F_FFFF, 0x7F80), (0xFF7F_FFFF, 0xFF80),  // Float's largest: overflows
            (0x7F80_0000, 0x7F80), (0xFF80_0000, 0xFF80),  // infinities stay
            (0x0000_8000, 0x0000), (0x0001_8000, 0x0002), (0x0000_8001, 0x0001),  // subnormals
            (0x8000_0000, 0x8000),
        ]
        for (bits, expected) in cases {
            let value = Float(bitPattern: bits)
            #expect(bfloat16(from: value) == expected, "0x\(String(bits, radix: 16))")
            #expect(Self.referenceBFloat16(value) == expected, "reference disagrees at 0x\(String(bits, radix: 16))")
        }
        let array = Self.narrow(cases.map { Float(bitPattern: $0.0) }, piece: 4) { convertFloat32ToBFloat16($0, $1, count: $2) }
        #expect(array == cases.map(\.1))
    }

    @Test func bfloat16NarrowingMatchesADoubleRoundingOnRandomFloats() {
        var generator = TestRandom(seed: 41)
        var mismatches = 0, checked = 0
        for _ in 0..<200_000 {
            var bits = UInt32(truncatingIfNeeded: generator.next())
            // Every fourth value a tie or a near-tie, which random bits rarely hit.
            switch generator.next() % 8 {
            case 0: bits = (bits & 0xFFFF_0000) | 0x8000
            case 1: bits = (bits & 0xFFFF_0000) | 0x7FFF
            default: break
            }
            let value = Float(bitPattern: bits)
            if value.isNaN { continue }
            checked += 1
            if bfloat16(from: value) != Self.referenceBFloat16(value) { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(checked > 190_000)
    }

    // MARK: - NaN

    @Test func nanStaysNaNEvenWhenItsPayloadIsInTheDroppedBits() {
        var generator = TestRandom(seed: 42)
        var patterns: [UInt32] = [0x7F80_0001, 0xFF80_0001, 0x7FC0_0000, 0x7F80_FFFF, 0xFFFF_FFFF]
        for _ in 0..<10_000 {
            let payload = UInt32(truncatingIfNeeded: generator.next()) & 0x007F_FFFF
            patterns.append((payload == 0 ? 1 : payload) | 0x7F80_0000 | (UInt32(truncatingIfNeeded: generator.next()) & 0x8000_0000))
        }
        let values = patterns.map { Float(bitPattern: $0) }
        #expect(values.allSatisfy { $0.isNaN })
        let brain = Self.narrow(values, piece: 4096) { convertFloat32ToBFloat16($0, $1, count: $2) }
        let half = Self.narrow(values, piece: 4096) { convertFloat32ToFloat16($0, $1, count: $2) }
        #expect(brain.allSatisfy { float32(fromBFloat16: $0).isNaN })
        #expect(half.allSatisfy { Float16(bitPattern: $0).isNaN })
        // The sign survives bfloat16 narrowing.
        #expect(zip(patterns, brain).allSatisfy { ($0.0 >> 31) == UInt32($0.1 >> 15) })
    }

    // MARK: - Tensors

    @Test func everyNonNaNHalfPatternRoundTripsThroughATensor() {
        let patterns = Self.allPatterns
        let fromHalf = Tensor(shape: [256, 256], float16Bits: patterns)
        let fromBrain = Tensor(shape: [256, 256], bfloat16Bits: patterns)
        let halfBack = fromHalf.float16Bits, brainBack = fromBrain.bfloat16Bits
        for bits in patterns {
            let i = Int(bits)
            if Float16(bitPattern: bits).isNaN {
                #expect(Float16(bitPattern: halfBack[i]).isNaN)
            } else if halfBack[i] != bits {
                Issue.record("Float16 0x\(String(bits, radix: 16)) came back as 0x\(String(halfBack[i], radix: 16))")
            }
            if float32(fromBFloat16: bits).isNaN {
                #expect(float32(fromBFloat16: brainBack[i]).isNaN)
            } else if brainBack[i] != bits {
                Issue.record("bfloat16 0x\(String(bits, radix: 16)) came back as 0x\(String(brainBack[i], radix: 16))")
            }
        }
    }
}
