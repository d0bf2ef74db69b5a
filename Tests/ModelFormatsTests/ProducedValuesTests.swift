import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// Replacement values made only when a writer reaches them (`ProducedValues`, what a compression job that keeps its
/// model compactly exports) write the same files as the same values given whole, and each is made once to check and
/// once to write.
@Suite struct ProducedValuesTests {
    /// `given`'s values, each made on demand and counted.
    final class Counter: @unchecked Sendable {
        var made: [TensorRole: Int] = [:]
    }

    static func produced(_ given: [TensorRole: Tensor], counter: Counter) -> [TensorRole: any ReplacementValues] {
        given.mapValues { tensor -> any ReplacementValues in
            ProducedValues(shape: tensor.shape) {
                let role = given.first { $0.value.pointer == tensor.pointer }!.key
                counter.made[role, default: 0] += 1
                return tensor.copy()
            }
        }
    }

    @Test func aGGUFExportOfProducedValuesIsTheExportOfTheTensors() throws {
        let folder = try TemporaryDirectory()
        let sourcePath = folder.file("source.gguf")
        try ExportFixtures.writeGGUF(to: sourcePath)
        let source = try Checkpoint.open(sourcePath)
        let given = try ExportFixtures.sparseProjections(of: source)
        let counter = Counter()
        _ = try source.export(replacing: given, to: folder.file("given.gguf"))
        _ = try source.export(replacing: Self.produced(given, counter: counter), to: folder.file("produced.gguf"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: folder.file("given.gguf")))
                == Data(contentsOf: URL(fileURLWithPath: folder.file("produced.gguf"))))
        #expect(counter.made.count == given.count && counter.made.values.allSatisfy { $0 == 2 })
    }

    /// The sparse file too, a fused tensor (phi3's qkv, gate_up) stacked from produced parts.
    @Test func aSparseFileOfProducedValuesIsTheFileOfTheTensors() throws {
        let source = try Checkpoint.open(FusedTensorTests.tinyPhi3)
        var given: [TensorRole: Tensor] = [:]
        for role in FusedTensorTests.projections { given[role] = ExportFixtures.sparse(try source.tensor(role)) }
        let out = try TemporaryDirectory()
        let counter = Counter()
        _ = try SparseModelWriter(source: source, valueKind: .s8).write(weights: given, sparse: Set(given.keys), to: out.file("given.gguf"))
        _ = try SparseModelWriter(source: source, valueKind: .s8).write(weights: Self.produced(given, counter: counter),
                                                                        sparse: Set(given.keys), to: out.file("produced.gguf"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: out.file("given.gguf")))
                == Data(contentsOf: URL(fileURLWithPath: out.file("produced.gguf"))))
        #expect(counter.made.count == given.count && counter.made.values.allSatisfy { $0 == 2 })
    }
}
