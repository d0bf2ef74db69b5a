import Kernels
import Testing
@testable import ModelFormats

@Suite struct GGUFFuzzTests {
    /// A small valid file with metadata of several types and tensors of F32, F16, BF16, Q8_0 and Q4_0.
    static let seed: [UInt8] = {
        var q8 = littleEndianBytes([UInt16(0x2C00)])  // scale 1/16
        q8 += (0..<32).map { UInt8(bitPattern: Int8($0 * 7 - 100)) }
        var q4 = littleEndianBytes([UInt16(0x3800)])  // scale 0.5
        q4 += (0..<16).map { UInt8($0 * 17 & 0xFF) }
        let tensors = sampleTensors + [
            SampleTensor(name: "blk.0.attn_q.weight", dimensions: [32], type: .q8_0, data: q8),
            SampleTensor(name: "blk.0.attn_k.weight", dimensions: [32], type: .q4_0, data: q4),
        ]
        let metadata = sampleMetadata + [
            ("general.alignment", .uint32(16)),
            ("test.nested", .array(elementType: .array, [.array(elementType: .uint16, [.uint16(1), .uint16(2)])])),
            ("test.int64", .int64(-5)),
        ]
        return sampleFile(metadata: metadata, tensors: tensors, alignment: 16)
    }()

    /// About a second in a debug build.
    static let iterations = 10_000

    /// Values that make counts, lengths, types and offsets interesting.
    static let interesting: [UInt64] = [0, 1, 2, 3, 4, 5, 12, 13, 15, 16, 31, 32, 33, 63, 64, 255, 256,
                                        0x7FFF_FFFF, 0xFFFF_FFFF, 1 << 32, 1 << 60, 1 << 63,
                                        UInt64(Int64.max), .max, .max - 1]

    static func mutate(_ bytes: [UInt8], using random: inout TestRandom) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            guard !bytes.isEmpty else { break }
            let position = Int.random(in: 0..<bytes.count, using: &random)
            switch Int.random(in: 0..<6, using: &random) {
            case 0:  // flip bits
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= 1 << UInt8.random(in: 0..<8, using: &random)
                }
            case 1:  // overwrite bytes
                for offset in position..<min(bytes.count, position + Int.random(in: 1...8, using: &random)) {
                    bytes[offset] = UInt8.random(in: 0...255, using: &random)
                }
            case 2:  // insert bytes
                let inserted = (0..<Int.random(in: 1...16, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                bytes.insert(contentsOf: inserted, at: position)
            case 3:  // delete bytes
                bytes.removeSubrange(position..<min(bytes.count, position + Int.random(in: 1...16, using: &random)))
            case 4:  // truncate
                bytes.removeSubrange(position...)
            default:  // an interesting 32- or 64-bit value
                let value = interesting.randomElement(using: &random)!
                let width = Bool.random(using: &random) ? 8 : 4
                for index in 0..<min(width, bytes.count - position) {
                    bytes[position + index] = UInt8(truncatingIfNeeded: value >> (8 * index))
                }
            }
        }
        return bytes
    }

    @Test func thousandsOfMutatedFilesEitherParseOrThrowATypedError() throws {
        let seedFile = try parse(Self.seed)
        #expect(seedFile.tensors.count == 5)
        var random = TestRandom(seed: 0x105A_D5EE_D0F_F22)
        var parsed = 0, refused = 0, converted = 0
        for iteration in 0..<Self.iterations {
            let mutated = Self.mutate(Self.seed, using: &random)
            let file: GGUFFile
            do {
                file = try parse(mutated)
            } catch is ModelFormatError {
                refused += 1
                continue
            } catch {
                Issue.record("iteration \(iteration): untyped error \(error)")
                continue
            }
            parsed += 1
            for tensor in file.tensors {
                do {
                    let values = try file.tensor(tensor)
                    #expect(values.count == tensor.elementCount)
                    converted += 1
                } catch is ModelFormatError {
                    // A type the codecs cannot convert: refused, not crashed.
                } catch {
                    Issue.record("iteration \(iteration): tensor '\(tensor.name)': untyped error \(error)")
                }
            }
        }
        // Both outcomes must be exercised for the test to mean anything.
        #expect(parsed > Self.iterations / 50 && refused > Self.iterations / 2, "parsed \(parsed), refused \(refused), tensors converted \(converted)")
        print("GGUF fuzz: \(Self.iterations) mutations, \(parsed) parsed, \(refused) refused, \(converted) tensors converted")
    }
}
