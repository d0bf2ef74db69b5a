import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// Agreement with an implementation of the format nobody wrote from losad's code:
/// scripts/sparse_format.py (numpy + the `gguf` package, written from docs/sparse-format.md), both ways.
@Suite(.enabled(if: TestReferences.python != nil, "set LOSAD_TEST_PYTHON to the python of scripts/python-env.sh"))
struct SparseModelFileInteropTests {
    @Test(arguments: SparseValueKind.allCases)
    func theReferenceReaderDecodesWhatLosadWritesToTheSameBits(kind: SparseValueKind) throws {
        for source in [try SparseFileFixtures.huggingFaceSource(), try SparseFileFixtures.ggufSource()] {
            let scratch = try TemporaryDirectory()
            let path = scratch.file("model.sparse.gguf")
            try SparseFileFixtures.writeSparse(source.checkpoint, kind: kind, to: path)
            let (index, reference) = try SparseFileFixtures.referenceDecode(path, scratch: scratch)
            #expect(index["version"] as? Int == Int(SparseModelFormat.version) && index["architecture"] as? String == "losa-sparse")
            #expect(index["family"] as? String == "llama" && index["source_format"] as? String == source.label)
            #expect(index["alignment"] as? Int == 64)

            let checkpoint = try Checkpoint.open(path)
            let weights = try checkpoint.loadWeights()
            let tensors = try #require(index["tensors"] as? [[String: Any]])
            // The reference lists the file's tensors in order, a sparse matrix once: as losad's table does.
            #expect(tensors.map { $0["name"] as? String ?? "?" } == checkpoint.tensors.map(\.name), "\(source.label)")
            for entry in checkpoint.tensors {
                let described = try #require(tensors.first { $0["name"] as? String == entry.name })
                #expect(described["shape"] as? [Int] == entry.shape, "\(entry.name)")
                if let kind = entry.sparseKind {
                    #expect(described["kind"] as? String == kind.rawValue, "\(entry.name)")
                    let stored = checkpoint.sparseFile?.sparseTensor(named: entry.name)?.storedCount
                    #expect(described["stored"] as? Int == stored, "\(entry.name)")
                } else {
                    #expect(described["type"] as? String == entry.type, "\(entry.name)")
                }
                let role = try #require(entry.role)
                let ours = try #require(weights[role]).scalars
                let theirs = try #require(reference[entry.name])
                #expect(bitwiseDifference(ours, theirs) == nil, "\(source.label) \(entry.name)")
            }
        }
    }

    @Test func losadReadsAFileTheReferenceWriterWrote() throws {
        let source = try SparseFileFixtures.huggingFaceSource()
        let scratch = try TemporaryDirectory()
        let path = scratch.file("python.sparse.gguf")
        let written = try jsonObject(SparseFileFixtures.runSparseFormat(
            ["write", source.folder.path, path, "--density", "0.4", "--kinds", "s4,f16,s8", "--seed", "3"]))
        let writtenKinds = try #require(written["tensors"] as? [[String: Any]])
        #expect(Set(writtenKinds.compactMap { $0["kind"] as? String }) == ["s8", "s4", "f16"])

        let checkpoint = try Checkpoint.open(path)
        #expect(checkpoint.format == .sparse && checkpoint.config == source.checkpoint.config)
        #expect(checkpoint.tokenizer.encode("the reference wrote it", addSpecialTokens: true)
                == source.checkpoint.tokenizer.encode("the reference wrote it", addSpecialTokens: true))
        let (_, reference) = try SparseFileFixtures.referenceDecode(path, scratch: scratch)
        let weights = try checkpoint.loadWeights()
        #expect(checkpoint.sparseMatrices().count == ExportFixtures.projections.count)
        for entry in checkpoint.tensors {
            let role = try #require(entry.role)
            let ours = try #require(weights[role]).scalars
            let theirs = try #require(reference[entry.name])
            #expect(bitwiseDifference(ours, theirs) == nil, "\(entry.name)")
            if let kind = entry.sparseKind {
                #expect(writtenKinds.first { $0["name"] as? String == entry.name }?["kind"] as? String == kind.rawValue)
                // 40 % of 32 or 48 columns kept per row, so the density is close to 0.4.
                let density = try #require(checkpoint.sparseFile?.sparseTensor(named: entry.name)).density
                #expect(abs(density - 0.4) < 0.02, "\(entry.name): \(density)")
            }
        }
    }

    @Test func theReferenceReaderRefusesAFileWhoseOffsetsDisagreeWithItsMasks() throws {
        // The other half of the malformed-file tests: the doc's checks are enough for a second reader to refuse it.
        let source = try SparseFileFixtures.huggingFaceSource()
        let scratch = try TemporaryDirectory()
        let good = scratch.file("good.gguf"), bad = scratch.file("bad.gguf")
        try SparseFileFixtures.writeSparse(source.checkpoint, kind: .s8, to: good)
        try SparseModelFileMalformedTests.corruptOffsets(good, to: bad)
        let (status, message) = try SparseFileFixtures.runSparseFormatFailing(["decode", bad, scratch.file("bad.f32")])
        #expect(status == 2 && message.contains("\(SparseModelFileMalformedTests.matrix).offsets: row 2 spans"), "\(status): \(message)")
        #expect(try SparseFileFixtures.runSparseFormatFailing(["decode", good, scratch.file("good.f32")]).status == 0)
    }
}
