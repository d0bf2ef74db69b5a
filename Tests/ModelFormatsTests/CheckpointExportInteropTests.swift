import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// Exports read by the reference readers: gguf-py (`gguf`) for GGUF and the
/// `safetensors` library for Hugging Face folders, through the scripts the
/// GGUF and safetensors interop tests use.
@Suite struct CheckpointExportInteropTests {
    @Test(.enabled(if: TestReferences.python != nil, "set LOSAD_TEST_PYTHON to the python of scripts/python-env.sh"),
          arguments: [ExportTensorType.auto, .q4_0])
    func gguf_pyReadsTheExportedGGUFAsLosadDoes(type: ExportTensorType) throws {
        let folder = try TemporaryDirectory()
        try ExportFixtures.writeGGUF(to: folder.file("source.gguf"))
        let source = try Checkpoint.open(folder.file("source.gguf"))
        let replacements = try ExportFixtures.sparseProjections(of: source)
        try source.export(replacing: replacements, as: type, metadata: CheckpointExportTests.losaMetadata, to: folder.file("out.gguf"))
        let output = try Checkpoint.open(folder.file("out.gguf"))
        let file = try #require(CheckpointExportTests.ggufFile(output))

        let report = try jsonObject(TestReferences.runScript("gguf_check.py", [folder.file("out.gguf")]))
        let metadata = try #require(report["metadata"] as? [[String: Any]])
        #expect(metadata.map { $0["key"] as? String ?? "?" } == file.metadata.keys)
        #expect(metadata.last?["value"] as? String == "ab12")
        let tensors = try #require(report["tensors"] as? [[String: Any]])
        #expect(tensors.map { $0["name"] as? String ?? "?" } == file.tensors.map(\.name))
        var checkedZeros = 0
        for tensor in tensors {
            let name = tensor["name"] as? String ?? "?"
            let info = try #require(file.tensorInfo(named: name))
            #expect(tensor["type"] as? String == info.type.description, "\(name)")
            #expect(tensor["shape"] as? [Int] == info.shape, "\(name)")
            let theirs = try #require(tensor["values"] as? [Double]).map { Float($0) }
            let ours = try file.tensor(info).scalars
            // Zeros compare as zeros: Q4_0 decodes a zero as −0 when its block's step is negative.
            #expect(zip(theirs, ours).allSatisfy { $0 == $1 }, "\(name): gguf-py decodes the same values")
            if let role = TensorRole(ggufName: name), let replacement = replacements[role] {
                let zeros = replacement.scalars.indices.filter { replacement.scalars[$0] == 0 }
                #expect(zeros.allSatisfy { theirs[$0] == 0 }, "\(name): gguf-py reads every zero as zero")
                checkedZeros += zeros.count
            }
        }
        #expect(checkedZeros > 5000)
    }

    @Test(.enabled(if: TestReferences.python != nil, "set LOSAD_TEST_PYTHON to the python of scripts/python-env.sh"))
    func theSafetensorsLibraryReadsTheExportedShards() throws {
        let source = try ExportFixtures.shardedHuggingFaceFolder()
        let checkpoint = try Checkpoint.open(source.path)
        let replacements = try ExportFixtures.sparseProjections(of: checkpoint)
        let destination = try TemporaryDirectory()
        try checkpoint.export(replacing: replacements, as: .f16, metadata: CheckpointExportTests.losaMetadata, to: destination.file("out"))
        let weights = try #require(CheckpointExportTests.safetensors(try Checkpoint.open(destination.file("out"))))

        let report = try SafetensorsInteropTests.runCheck(destination.file("out"))
        try SafetensorsInteropTests.compareReport(report, with: weights.files)
        let files = try #require(report["files"] as? [String: [String: Any]])
        #expect(files.count == weights.files.count && files.count >= 3)
        for described in files.values {
            #expect(described["metadata"] as? [String: String]
                    == ["format": "pt", "losa.sparsity": "0.5", "losa.method": "wanda", "losa.source_sha256": "ab12"])
        }
        let tensors = try #require(report["tensors"] as? [String: [String: Any]])
        for (role, replacement) in replacements {
            let name = try #require(role.huggingFaceName)
            let bits = try #require(tensors[name]?["float32_bits"] as? [UInt32], "\(name)")
            #expect(tensors[name]?["dtype"] as? String == "F16")
            let zeros = replacement.scalars.indices.filter { replacement.scalars[$0] == 0 }
            #expect(zeros.allSatisfy { bits[$0] == 0 }, "\(name): numpy reads every zero as +0")
        }
    }
}
