import Foundation
import Testing
@testable import ModelFormats

/// Seeded mutation fuzzing of the reader: every mutant of a small valid file
/// either parses or throws a ModelFormatError naming the file, and a mutant
/// that parses converts every convertible tensor without crashing.
@Suite struct SafetensorsFuzzTests {
    static let iterations = 3000

    /// A small valid file with every convertible dtype, a scalar, an empty
    /// tensor and an unconvertible one, as SafetensorsWriter's layout has it.
    static func seedFile() -> [UInt8] {
        let header = #"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"#
            + #""h":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[22,26]},"#
            + #""s":{"dtype":"F32","shape":[],"data_offsets":[26,30]},"e":{"dtype":"F16","shape":[0,4],"data_offsets":[30,30]},"#
            + #""i":{"dtype":"I8","shape":[2],"data_offsets":[30,32]},"u":{"dtype":"U8","shape":[1],"data_offsets":[32,33]},"#
            + #""d":{"dtype":"F64","shape":[1],"data_offsets":[33,41]}}"#
        return safetensorsBytes(header: header, data: (0..<41).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
    }

    @Test func randomMutantsEitherParseOrThrowTypedErrorsAndNeverCrash() throws {
        let seed = Self.seedFile()
        let original = try SafetensorsFile(path: "fuzz.safetensors", contents: seed)
        #expect(original.tensors.count == 8)

        var random = TestRandom(seed: 0x5AFE_7E45)
        let headerEnd = 8 + Int(seed[0]) + Int(seed[1]) << 8
        var parsed = 0
        var refused: [String: Int] = [:]
        for iteration in 0..<Self.iterations {
            let mutant = Self.mutate(seed, headerEnd: headerEnd, using: &random)
            do {
                let file = try SafetensorsFile(path: "fuzz.safetensors", contents: mutant)
                parsed += 1
                for info in file.tensors {
                    let raw = try file.rawBytes(named: info.name)
                    #expect(raw.count == info.dtype.byteCount(elements: info.elementCount), "iteration \(iteration)")
                    if info.dtype.convertsToFloat32 {
                        let tensor = try file.tensor(named: info.name)
                        #expect(tensor.count == info.elementCount && tensor.shape == info.shape, "iteration \(iteration)")
                    } else {
                        #expect(throws: ModelFormatError.self) { _ = try file.tensor(named: info.name) }
                    }
                }
            } catch let error as ModelFormatError {
                #expect(error.file == "fuzz.safetensors")
                refused[error.field, default: 0] += 1
            } catch {
                Issue.record("iteration \(iteration): untyped error \(error)")
            }
        }
        // Both outcomes must actually occur, or the mutations are too tame or too wild.
        #expect(parsed > 100, "only \(parsed) mutants parsed")
        #expect(refused.values.reduce(0, +) > Self.iterations / 2, "\(refused)")
    }

    /// One to three random edits: half in the header where the structure is,
    /// a quarter in the tensor data (so that converted values vary), a quarter anywhere.
    static func mutate(_ bytes: [UInt8], headerEnd: Int, using random: inout TestRandom) -> [UInt8] {
        var result = bytes
        let interesting: [UInt8] = Array("0123456789[]{},:\"-.eE ".utf8) + [0x00, 0x7F, 0x80, 0xFF]
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            func position() -> Int {
                guard !result.isEmpty else { return 0 }
                switch Int.random(in: 0..<4, using: &random) {
                case 0, 1: return Int.random(in: 8..<headerEnd, using: &random) % result.count
                case 2 where headerEnd < result.count: return Int.random(in: headerEnd..<result.count, using: &random)
                default: return Int.random(in: 0..<result.count, using: &random)
                }
            }
            switch Int.random(in: 0..<7, using: &random) {
            case 0 where !result.isEmpty:  // overwrite a byte with a random one
                result[position()] = UInt8.random(in: 0...255, using: &random)
            case 1 where !result.isEmpty:  // overwrite a byte with a JSON-significant one
                result[position()] = interesting.randomElement(using: &random)!
            case 2 where !result.isEmpty:  // flip one bit
                result[position()] ^= 1 << UInt8.random(in: 0..<8, using: &random)
            case 3:  // truncate
                result.removeSubrange(Int.random(in: 0...result.count, using: &random)...)
            case 4:  // insert a few bytes
                let inserted = (0..<Int.random(in: 1...4, using: &random)).map { _ in interesting.randomElement(using: &random)! }
                result.insert(contentsOf: inserted, at: min(position(), result.count))
            case 5 where result.count > 1:  // delete a short run
                let start = position()
                result.removeSubrange(start..<min(result.count, start + Int.random(in: 1...4, using: &random)))
            case 6 where !result.isEmpty:  // change the header length by a little
                result[Int.random(in: 0..<min(2, result.count), using: &random)] &+= UInt8.random(in: 1...3, using: &random)
            default:
                break
            }
        }
        return result
    }
}
