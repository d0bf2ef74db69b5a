import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// Seeded mutations (bit flips, overwrites, insertions, deletions, truncations, interesting
/// integers; `GGUFFuzzTests.mutate`) of sparse model files: each either opens and decodes every
/// tensor, or is refused with a ModelFormatError; never a crash, a hang or an untyped error.
@Suite struct SparseModelFileFuzzTests {
    /// A small sparse file: an s8, an s4 and an f16 matrix (partial groups, an empty row) and a dense
    /// tensor, alignment 8, so that most mutations land in headers, tables, masks and offsets.
    static func seed() throws -> [UInt8] {
        var random = TestRandom(seed: 0x5EED_5BA5)
        func matrix(_ rows: Int, _ cols: Int) -> Tensor {
            Tensor(shape: [rows, cols], values: (0..<(rows * cols)).map { index in
                index < cols || random.unit() < 0.5 ? 0 : random.uniform(-2, 2)
            })
        }
        var metadata = GGUFMetadata()
        metadata["general.architecture"] = .string(SparseModelFormat.architecture)
        metadata[SparseModelFormat.Key.version] = .uint32(SparseModelFormat.version)
        metadata[SparseModelFormat.Key.architecture] = .string("llama")
        metadata[SparseModelFormat.Key.sourceFormat] = .string("gguf")
        metadata[SparseModelFormat.Key.groupSize] = .uint32(64)
        metadata["general.alignment"] = .uint32(8)
        var writer = GGUFWriter(metadata: metadata)
        var names: [GGUFValue] = [], kinds: [GGUFValue] = [], columns: [GGUFValue] = []
        for (name, kind, rows, cols) in [("a", SparseValueKind.s8, 3, 70), ("b", .s4, 3, 65), ("c", .f16, 2, 10)] {
            SparseModelWriter.addParts(of: SparseMatrix.encode(matrix(rows, cols), kind: kind), named: name, to: &writer)
            names.append(.string(name))
            kinds.append(.string(kind.rawValue))
            columns.append(.uint32(UInt32(cols)))
        }
        writer.addTensor(named: "d", Tensor(shape: [4], values: [1, -2, 3, -4]), as: .f32)
        writer.metadata[SparseModelFormat.Key.tensors] = .array(elementType: .string, names)
        writer.metadata[SparseModelFormat.Key.kinds] = .array(elementType: .string, kinds)
        writer.metadata[SparseModelFormat.Key.columns] = .array(elementType: .uint32, columns)
        let folder = try TemporaryDirectory()
        try writer.write(to: folder.file("seed.gguf"))
        return try Array(Data(contentsOf: URL(fileURLWithPath: folder.file("seed.gguf"))))
    }

    static let iterations = 10_000

    @Test func thousandsOfMutatedSparseFilesEitherDecodeOrThrowATypedError() throws {
        let seed = try Self.seed()
        let seedFile = try SparseModelFile(file: try GGUFFile(contents: seed, path: "seed.gguf"))
        #expect(seedFile.sparseTensors.map(\.name) == ["a", "b", "c"] && seedFile.entries.count == 4)
        var random = TestRandom(seed: 0x5BA5_F022)
        var opened = 0, refused = 0, decoded = 0
        for iteration in 0..<Self.iterations {
            let mutated = GGUFFuzzTests.mutate(seed, using: &random)
            let file: SparseModelFile
            do {
                file = try SparseModelFile(file: try GGUFFile(contents: mutated, path: "fuzz.gguf"))
            } catch is ModelFormatError {
                refused += 1
                continue
            } catch {
                Issue.record("iteration \(iteration): untyped error \(error)")
                continue
            }
            opened += 1
            for entry in file.entries {
                do {
                    let values = try file.tensor(named: entry.name)
                    #expect(values.count == entry.shape.reduce(1, *))
                    decoded += 1
                } catch is ModelFormatError {
                    // A dense type the codecs cannot convert: refused, not crashed.
                } catch {
                    Issue.record("iteration \(iteration): tensor '\(entry.name)': untyped error \(error)")
                }
            }
        }
        // Both outcomes must be exercised for the test to mean anything. Few mutations keep a file
        // valid: the layout checks tie masks, offsets and value lengths together (about 2 % do).
        #expect(opened >= Self.iterations / 100 && refused > Self.iterations / 2, "opened \(opened), refused \(refused)")
        print("sparse fuzz: \(Self.iterations) mutations, \(opened) opened, \(refused) refused, \(decoded) tensors decoded")
    }

    @Test func mutatedWholeModelFilesOpenAsCheckpointsOrThrowATypedError() throws {
        // The tiny model, through config, tokenizer and the shape checks; fewer rounds (each parses a tokenizer).
        let source = try SparseFileFixtures.huggingFaceSource()
        let folder = try TemporaryDirectory()
        try SparseFileFixtures.writeSparse(source.checkpoint, kind: .s4, to: folder.file("tiny.gguf"))
        let seed = try Array(Data(contentsOf: URL(fileURLWithPath: folder.file("tiny.gguf"))))
        var random = TestRandom(seed: 0x71_4E)
        var opened = 0, refused = 0
        for iteration in 0..<400 {
            let mutated = GGUFFuzzTests.mutate(seed, using: &random)
            do {
                let checkpoint = try Checkpoint.openGGUF(file: try GGUFFile(contents: mutated, path: "fuzz.gguf"))
                _ = try checkpoint.loadWeights()
                opened += 1
            } catch is ModelFormatError {
                refused += 1
            } catch {
                Issue.record("iteration \(iteration): untyped error \(error)")
            }
        }
        #expect(opened > 0 && refused > 0, "opened \(opened), refused \(refused)")
        print("sparse checkpoint fuzz: 400 mutations, \(opened) opened, \(refused) refused")
    }
}
