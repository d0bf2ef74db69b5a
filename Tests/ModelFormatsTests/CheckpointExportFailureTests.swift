import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// An export either puts a complete output in place or leaves everything as
/// it was: no temporary file or folder, no partial output, an existing output
/// replaced only when asked, the source never touched; and every refusal is a
/// typed error that names the tensor, key or path.
@Suite struct CheckpointExportFailureTests {
    struct Source {
        let folder: TemporaryDirectory
        let checkpoint: Checkpoint
        let replacements: [TensorRole: Tensor]
    }

    static func ggufSource() throws -> Source {
        let folder = try TemporaryDirectory()
        try ExportFixtures.writeGGUF(to: folder.file("source.gguf"))
        let checkpoint = try Checkpoint.open(folder.file("source.gguf"))
        return Source(folder: folder, checkpoint: checkpoint, replacements: try ExportFixtures.sparseProjections(of: checkpoint))
    }

    static func huggingFaceSource() throws -> Source {
        let folder = try ExportFixtures.huggingFaceFolder()
        let checkpoint = try Checkpoint.open(folder.path)
        return Source(folder: folder, checkpoint: checkpoint, replacements: try ExportFixtures.sparseProjections(of: checkpoint))
    }

    // MARK: - Existing outputs

    @Test func anExistingGGUFIsReplacedOnlyWhenAsked() throws {
        let source = try Self.ggufSource()
        let output = source.folder.file("out.gguf")
        try writeFile(output, Data("keep me".utf8))
        let error = modelFormatError { try source.checkpoint.export(replacing: source.replacements, to: output) }
        #expect(error == .io(file: output, operation: "export", reason: "it already exists (losad replaces an output only when asked)"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: output)) == Data("keep me".utf8))
        #expect(source.folder.contents == ["out.gguf", "source.gguf"])

        try source.checkpoint.export(replacing: source.replacements, to: output, replacingExisting: true)
        #expect(try Checkpoint.open(output).tensor(.layer(1, .up)).scalars.count { $0 == 0 } >= 48 * 16)
        #expect(source.folder.contents == ["out.gguf", "source.gguf"])
    }

    @Test func anExistingFolderIsReplacedOnlyWhenAskedAndAnEmptyOneCounts() throws {
        let source = try Self.huggingFaceSource()
        let destination = try TemporaryDirectory()
        let output = destination.file("out")
        // An empty folder too: rename(2) would silently replace it.
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: false)
        let error = modelFormatError { try source.checkpoint.export(replacing: source.replacements, to: output) }
        #expect(error == .io(file: output, operation: "export", reason: "it already exists (losad replaces an output only when asked)"))
        #expect(try destination.contents == ["out"] && FileManager.default.contentsOfDirectory(atPath: output).isEmpty)

        try writeFile(output + "/stale.txt", Data("old".utf8))
        try source.checkpoint.export(replacing: source.replacements, to: output + "/", replacingExisting: true)
        #expect(destination.contents == ["out"], "the old folder is gone, not left aside")
        #expect(!FileManager.default.fileExists(atPath: output + "/stale.txt"))
        #expect(try Checkpoint.open(output).tensor(.layer(0, .gate)).scalars.count { $0 == 0 } >= 48 * 16)
    }

    // MARK: - Refused before anything is written

    @Test func aWrongShapeIsNamedAndNothingIsWritten() throws {
        for source in [try Self.ggufSource(), try Self.huggingFaceSource()] {
            let destination = try TemporaryDirectory()
            var replacements = source.replacements
            replacements[.layer(1, .key)] = Tensor(zeros: [32, 32])
            let name = source.checkpoint.entry(for: .layer(1, .key))!.name
            let output = destination.file(source.checkpoint.format == .gguf ? "out.gguf" : "out")
            let error = modelFormatError { try source.checkpoint.export(replacing: replacements, to: output) }
            #expect(error == .invalid(file: output, field: "replacement tensor '\(name)'", reason: "shape [32, 32] where the source's is [16, 32]"))
            #expect(destination.contents.isEmpty)
        }
    }

    @Test func refusalsNameWhatIsWrong() throws {
        let gguf = try Self.ggufSource(), huggingFace = try Self.huggingFaceSource()
        let destination = try TemporaryDirectory()
        let out = destination.file("out.gguf")

        var missing = gguf.replacements
        missing[.layer(7, .query)] = Tensor(zeros: [32, 32])
        #expect(modelFormatError { try gguf.checkpoint.export(replacing: missing, to: out) }?.field == "replacement tensor 'blk.7.attn_q.weight'")

        var notANumber = gguf.replacements
        let nan = gguf.replacements[.layer(0, .value)]!.copy()
        nan.pointer[37] = .nan
        notANumber[.layer(0, .value)] = nan
        #expect(modelFormatError { try gguf.checkpoint.export(replacing: notANumber, to: out) }
                == .invalid(file: out, field: "replacement tensor 'blk.0.attn_v.weight'", reason: "element 37 is nan"))

        var tooLarge = gguf.replacements
        let large = gguf.replacements[.layer(0, .up)]!.copy()
        large.pointer[5] = 70000
        tooLarge[.layer(0, .up)] = large
        #expect(modelFormatError { try gguf.checkpoint.export(replacing: tooLarge, as: .f16, to: out) }
                == .invalid(file: out, field: "replacement tensor 'blk.0.ffn_up.weight'",
                            reason: "element 5 is 70000.0; F16 stores magnitudes up to 65504.0"))
        #expect(throws: Never.self) { try gguf.checkpoint.export(replacing: tooLarge, as: .q8_0, to: out) }
        try FileManager.default.removeItem(atPath: out)

        let badKey = GGUFMetadata([(key: "general.name", value: .string("mine"))])
        #expect(modelFormatError { try gguf.checkpoint.export(replacing: gguf.replacements, metadata: badKey, to: out) }?.field
                == "metadata key 'general.name'")

        #expect(modelFormatError { try gguf.checkpoint.export(replacing: gguf.replacements, to: destination.file("out.bin")) }?.file
                == destination.file("out.bin"))
        #expect(modelFormatError { try gguf.checkpoint.export(replacing: gguf.replacements, to: destination.file("no/such/out.gguf")) }
                == .io(file: destination.file("no/such/out.gguf"), operation: "export", reason: "its folder \(destination.file("no/such")) does not exist"))

        let q8 = modelFormatError { try huggingFace.checkpoint.export(replacing: huggingFace.replacements, as: .q8_0, to: destination.file("hf")) }
        #expect(q8 == .unsupported(file: destination.file("hf"), field: "tensor type q8_0",
                                   reason: "safetensors has no q8_0 blocks; export a Hugging Face folder as auto, f16, bf16 or f32"))
        #expect(destination.contents.isEmpty)
    }

    @Test func theSourceIsNeverTheOutputNorInsideIt() throws {
        let gguf = try Self.ggufSource(), huggingFace = try Self.huggingFaceSource()
        let before = try ExportFixtures.snapshot(gguf.folder.file("source.gguf"))
        let same = modelFormatError {
            try gguf.checkpoint.export(replacing: gguf.replacements, to: gguf.folder.file("source.gguf"), replacingExisting: true)
        }
        #expect(same?.file == gguf.folder.file("source.gguf") && same?.field == "export")
        #expect(try ExportFixtures.snapshot(gguf.folder.file("source.gguf")) == before)

        // The model one level down, so that "the folder around it" is a scratch folder too.
        let outer = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: outer.file("model"), withIntermediateDirectories: false)
        try ExportFixtures.writeHuggingFaceFolder(at: outer.file("model"))
        let model = try Checkpoint.open(outer.file("model"))
        let folderBefore = try ExportFixtures.snapshot(outer.path)
        for output in [outer.file("model"), outer.file("model/sparse"), outer.path] {
            let error = modelFormatError { try model.export(replacing: huggingFace.replacements, to: output, replacingExisting: true) }
            #expect(error?.reason.contains("which an export never touches") == true, "\(output)")
        }
        #expect(try ExportFixtures.snapshot(outer.path) == folderBefore)
    }

    // MARK: - Failing half-way

    @Test func aFailureAfterTheWeightsAreWrittenLeavesNothing() throws {
        let source = try Self.huggingFaceSource()
        // A legal file name too long for its temporary name (.NAME.RANDOM.tmp exceeds NAME_MAX):
        // the copy fails after every shard is already in the temporary folder.
        try writeFile(source.folder.file("original/" + String(repeating: "n", count: 250)), Data("x".utf8))
        let destination = try TemporaryDirectory()
        let error = modelFormatError { try source.checkpoint.export(replacing: source.replacements, to: destination.file("out")) }
        #expect(error?.file.hasSuffix(String(repeating: "n", count: 250)) == true)
        #expect(destination.contents.isEmpty, "neither the temporary folder nor a partial output is left")
    }

    @Test func anUnwritableFolderIsReportedWithNothingLeft() throws {
        // /proc takes no new entries, whoever asks (chmod would not stop root).
        let source = try Self.ggufSource()
        let error = modelFormatError { try source.checkpoint.export(replacing: source.replacements, to: "/proc/losad-export.gguf") }
        #expect(error?.file == "/proc/losad-export.gguf" && error?.field.hasPrefix("create the temporary file") == true)
        #expect(!FileManager.default.fileExists(atPath: "/proc/losad-export.gguf"))

        let hf = try Self.huggingFaceSource()
        let folderError = modelFormatError { try hf.checkpoint.export(replacing: hf.replacements, to: "/proc/losad-export") }
        #expect(folderError?.file == "/proc/losad-export" && folderError?.field.hasPrefix("create the temporary folder") == true)
    }
}

extension ModelFormatError {
    /// The reason the error gives, for errors that have one.
    var reason: String {
        switch self {
        case .invalid(_, _, let reason), .unsupported(_, _, let reason), .io(_, _, let reason): return reason
        case .truncated: return ""
        }
    }
}
