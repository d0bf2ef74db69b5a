import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// `Checkpoint.export`: GGUF → GGUF and Hugging Face → Hugging Face, re-read
/// from disk. Zeros must come back exactly where the caller put them, other
/// values within the stored type's rounding, untouched tensors and files bit
/// for bit, metadata as the source's plus the losa keys.
@Suite struct CheckpointExportTests {
    static let losaMetadata = GGUFMetadata([
        (key: "losa.sparsity", value: .float32(0.5)),
        (key: "losa.method", value: .string("wanda")),
        (key: "losa.source_sha256", value: .string("ab12")),
    ])

    // MARK: - GGUF

    @Test func aQuantisedGGUFExportsAsQ8_0WithItsMetadataAndEveryOtherTensorUnchanged() throws {
        let folder = try TemporaryDirectory()
        let sourcePath = folder.file("source.gguf")
        try ExportFixtures.writeGGUF(to: sourcePath)
        let before = try ExportFixtures.snapshot(sourcePath)
        let source = try Checkpoint.open(sourcePath)
        let replacements = try ExportFixtures.sparseProjections(of: source)

        let outputPath = folder.file("sparse.gguf")
        let result = try source.export(replacing: replacements, metadata: Self.losaMetadata, to: outputPath)

        #expect(try ExportFixtures.snapshot(sourcePath) == before, "the source is untouched")
        #expect(folder.contents == ["source.gguf", "sparse.gguf"], "no temporary file is left")
        #expect(result.path == outputPath && result.format == .gguf)
        #expect(result.bytesWritten == CheckpointExporter.fileSize(outputPath))
        #expect(result.replacedCount == 14 && result.copiedCount == source.tensors.count - 14)
        #expect(result.fallbacks.isEmpty)

        let output = try Checkpoint.open(outputPath)
        let sourceFile = try #require(Self.ggufFile(source)), outputFile = try #require(Self.ggufFile(output))
        #expect(outputFile.tensors.map(\.name) == sourceFile.tensors.map(\.name), "the source's tensor order")
        for info in sourceFile.tensors {
            let written = try #require(outputFile.tensorInfo(named: info.name))
            let role = try #require(TensorRole(ggufName: info.name))
            let exported = try #require(result.tensors.first { $0.name == info.name })
            if let replacement = replacements[role] {
                // auto: quantised sources become Q8_0; F16 ffn_down keeps its type.
                let expected: GGMLType = info.type == .f16 ? .f16 : .q8_0
                #expect(written.type == expected, "\(info.name)")
                #expect(exported.replaced && exported.type == expected.description && exported.sourceType == info.type.description)
                try Self.expectFaithful(try output.tensor(role), to: replacement, storedAs: written.type, name: info.name)
            } else {
                #expect(written.type == info.type && written.dimensions == info.dimensions, "\(info.name)")
                #expect(Array(outputFile.rawBytes(of: written)) == Array(sourceFile.rawBytes(of: info)), "\(info.name) is copied byte for byte")
                #expect(!exported.replaced && exported.type == info.type.description)
            }
        }

        // Metadata: the source's keys in order with their values, then the losa keys; the file type now says Q8_0.
        #expect(outputFile.metadata.keys == sourceFile.metadata.keys + Self.losaMetadata.keys)
        for (key, value) in sourceFile.metadata.entries where key != "general.file_type" {
            #expect(outputFile.metadata[key] == value, "\(key)")
        }
        for (key, value) in Self.losaMetadata.entries { #expect(outputFile.metadata[key] == value, "\(key)") }
        #expect(outputFile.metadata["general.file_type"] == .uint32(7), "llama.cpp's MOSTLY_Q8_0")
        #expect(outputFile.alignment == 64 && output.config == source.config)
    }

    @Test(arguments: [ExportTensorType.q8_0, .q4_0, .f16, .bf16, .f32])
    func everyGGUFTypeKeepsZerosExact(type: ExportTensorType) throws {
        let folder = try TemporaryDirectory()
        try ExportFixtures.writeGGUF(to: folder.file("source.gguf"))
        let source = try Checkpoint.open(folder.file("source.gguf"))
        let replacements = try ExportFixtures.sparseProjections(of: source)
        let result = try source.export(replacing: replacements, as: type, to: folder.file("out.gguf"))
        let output = try Checkpoint.open(folder.file("out.gguf"))
        let file = try #require(Self.ggufFile(output))
        let wanted = try #require(type.ggmlType)

        for (role, replacement) in replacements {
            let info = try #require(file.tensorInfo(named: role.ggufName))
            let exported = try #require(result.tensors.first { $0.role == role })
            if case .layer(_, .down) = role, wanted.blockSize > 1 {
                // Rows of 48 are not whole blocks of 32: F16, and the result says why.
                #expect(info.type == .f16 && exported.type == "F16")
                #expect(exported.fallback == "rows of 48 elements are not whole \(wanted) blocks of 32; stored as F16")
            } else {
                #expect(info.type == wanted && exported.fallback == nil, "\(role.ggufName)")
            }
            try Self.expectFaithful(try output.tensor(role), to: replacement, storedAs: info.type, name: info.name)
            try Self.expectZeroCodes(Array(file.rawBytes(of: info)), type: info.type, for: replacement, name: info.name)
        }
        #expect(result.fallbacks.count == (wanted.blockSize > 1 ? 2 : 0))
    }

    // MARK: - Hugging Face

    @Test func aHuggingFaceFolderExportsAsAFolderWithItsFilesAndF32WeightsExactly() throws {
        let source = try ExportFixtures.huggingFaceFolder()
        let before = try ExportFixtures.snapshot(source.path)
        let checkpoint = try Checkpoint.open(source.path)
        let replacements = try ExportFixtures.sparseProjections(of: checkpoint)
        let destination = try TemporaryDirectory()
        let outputPath = destination.file("sparse-model")

        let result = try checkpoint.export(replacing: replacements, metadata: Self.losaMetadata, to: outputPath)

        #expect(try ExportFixtures.snapshot(source.path) == before, "the source is untouched")
        #expect(destination.contents == ["sparse-model"], "no temporary folder is left")
        #expect(result.format == .huggingFace && result.replacedCount == 14 && result.copiedCount == 7)
        #expect(result.copiedFiles == ExportFixtures.copiedRepositoryFiles)
        #expect(result.skippedFiles == ExportFixtures.skippedRepositoryFiles)
        let written = try ExportFixtures.snapshot(outputPath)
        #expect(Set(written.keys) == Set(ExportFixtures.copiedRepositoryFiles + ["model.safetensors"]))
        for name in ExportFixtures.copiedRepositoryFiles {
            #expect(written[name] == before[name], "\(name) is copied unchanged")
            #expect(ExportFixtures.isRegularFile(outputPath + "/" + name, followingLinks: false), "\(name) is a file, not a link")
        }
        #expect(result.bytesWritten == written.values.reduce(0) { $0 + $1.count })

        let output = try Checkpoint.open(outputPath)
        #expect(output.config == checkpoint.config && output.format == .huggingFace)
        let sourceFile = try SafetensorsFile(path: source.file("model.safetensors"))
        let outputFile = try SafetensorsFile(path: outputPath + "/model.safetensors")
        #expect(outputFile.metadata == ["format": "pt", "losa.sparsity": "0.5", "losa.method": "wanda", "losa.source_sha256": "ab12"])
        #expect(Set(outputFile.tensorNames) == Set(sourceFile.tensorNames))
        for name in sourceFile.tensorNames {
            let role = try #require(TensorRole(huggingFaceName: name))
            #expect(outputFile.info(named: name)?.dtype == .f32, "auto keeps F32")
            if let replacement = replacements[role] {
                #expect(try output.tensor(role).scalars.map(\.bitPattern) == replacement.scalars.map(\.bitPattern), "\(name) in F32 exactly")
            } else {
                #expect(try outputFile.rawBytes(named: name) == sourceFile.rawBytes(named: name), "\(name) is copied byte for byte")
            }
        }
    }

    @Test func aShardedBF16FolderKeepsItsShardsAndIndex() throws {
        let source = try ExportFixtures.shardedHuggingFaceFolder()
        let checkpoint = try Checkpoint.open(source.path)
        let weights = try #require(Self.safetensors(checkpoint))
        let replacements = try ExportFixtures.sparseProjections(of: checkpoint)
        let destination = try TemporaryDirectory()
        let outputPath = destination.file("sparse")

        let result = try checkpoint.export(replacing: replacements, to: outputPath)
        #expect(result.replacedCount == 14 && result.copiedCount == 8, "the rotary cache losad ignores is copied too")
        #expect(result.tensors.allSatisfy { $0.type == $0.sourceType }, "auto keeps BF16 and F32")

        let output = try Checkpoint.open(outputPath)
        let outputWeights = try #require(Self.safetensors(output))
        #expect(outputWeights.indexPath != nil)
        #expect(outputWeights.files.map { splitPath($0.path).name } == weights.files.map { splitPath($0.path).name })
        for (sourceFile, outputFile) in zip(weights.files, outputWeights.files) {
            #expect(Set(outputFile.tensorNames) == Set(sourceFile.tensorNames), "\(sourceFile.path): the same tensors per shard")
            for name in sourceFile.tensorNames {
                let role = TensorRole(huggingFaceName: name)
                #expect(outputFile.info(named: name)?.dtype == sourceFile.info(named: name)?.dtype, "\(name)")
                if let role, let replacement = replacements[role] {
                    try Self.expectFaithful(try outputFile.tensor(named: name), to: replacement, storedAs: .bf16, name: name)
                } else {
                    #expect(try outputFile.rawBytes(named: name) == sourceFile.rawBytes(named: name), "\(name) is copied byte for byte")
                }
            }
        }
        #expect(outputWeights.declaredTotalSize == outputWeights.files.flatMap(\.tensors).reduce(0) { $0 + $1.byteRange.count })
    }

    @Test(arguments: [ExportTensorType.f16, .bf16])
    func aHuggingFaceFolderStoresReplacedTensorsInTheChosenDType(type: ExportTensorType) throws {
        let source = try ExportFixtures.huggingFaceFolder()
        let checkpoint = try Checkpoint.open(source.path)
        let replacements = try ExportFixtures.sparseProjections(of: checkpoint)
        let destination = try TemporaryDirectory()
        let result = try checkpoint.export(replacing: replacements, as: type, to: destination.file("out"))
        let dtype = try #require(type.safetensorsDType)
        let file = try SafetensorsFile(path: destination.file("out/model.safetensors"))
        for exported in result.tensors {
            #expect(file.info(named: exported.name)?.dtype.description == exported.type)
            #expect(exported.type == (exported.replaced ? dtype.description : "F32"), "\(exported.name)")
        }
        for (role, replacement) in replacements {
            let name = try #require(role.huggingFaceName)
            try Self.expectFaithful(try file.tensor(named: name), to: replacement, storedAs: type == .f16 ? .f16 : .bf16, name: name)
        }
    }

    /// Copies keep tensors byte for byte in dtypes losad cannot convert (F64, I64, …) too.
    @Test func copiedSafetensorsEntriesKeepEveryDTypeByteForByte() throws {
        let fixture = try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures/safetensors_reference.safetensors")
        let source = try SafetensorsFile(path: fixture.path)
        #expect(source.tensors.contains { !$0.dtype.isWritable })
        let folder = try TemporaryDirectory()
        try SafetensorsWriter.write(try source.tensorNames.map { try .init(copying: $0, from: source) }, to: folder.file("copy.safetensors"))
        let copy = try SafetensorsFile(path: folder.file("copy.safetensors"))
        #expect(Set(copy.tensorNames) == Set(source.tensorNames))
        for info in source.tensors {
            #expect(copy.info(named: info.name)?.dtype == info.dtype && copy.info(named: info.name)?.shape == info.shape, "\(info.name)")
            #expect(try copy.rawBytes(named: info.name) == source.rawBytes(named: info.name), "\(info.name)")
        }
        #expect(modelFormatError { _ = try SafetensorsWriter.Entry(copying: "absent", from: source) }?.field == "tensor 'absent'")
    }

    // MARK: - Zero counts

    @Test func zeroCountsOfTheExportedFileAreExactPerRow() throws {
        let folder = try TemporaryDirectory()
        try ExportFixtures.writeGGUF(to: folder.file("source.gguf"))
        let source = try Checkpoint.open(folder.file("source.gguf"))
        let replacements = try ExportFixtures.sparseProjections(of: source)
        try source.export(replacing: replacements, as: .f16, to: folder.file("out.gguf"))
        let counts = try Checkpoint.open(folder.file("out.gguf")).zeroCounts()
        #expect(Set(counts.keys) == Set(ExportFixtures.projections))
        for (role, replacement) in replacements {
            let count = try #require(counts[role])
            let k = replacement.rowLength
            let rows = (0..<replacement.rowCount).map { row in replacement.scalars[(row * k)..<((row + 1) * k)].count { $0 == 0 } }
            // F16 keeps every weight of these magnitudes non-zero, so the counts are the mask's exactly.
            #expect(count.zerosPerRow == rows, "\(role.ggufName)")
            #expect(count.zeroCount == rows.reduce(0, +) && count.elementCount == replacement.count)
            #expect(count.zerosPerRow[0] == k && count.type == "F16" && count.name == role.ggufName)
        }
        let layer0Query = try #require(counts[.layer(0, .query)])
        // Row 0 all zero, row 1 31 zeros, the other 30 rows half of 32.
        #expect(layer0Query.zeroCount == 32 + 31 + 30 * 16)
        #expect(abs(layer0Query.sparsity - Double(32 + 31 + 30 * 16) / 1024) < 1e-12)
    }

    // MARK: - Checks

    /// `read` equals `written` up to `type`'s rounding, with every exact zero exactly zero.
    static func expectFaithful(_ read: Tensor, to written: Tensor, storedAs type: GGMLType, name: String,
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(read.shape == written.shape, "\(name)", sourceLocation: sourceLocation)
        let x = written.scalars, y = read.scalars
        var lostZeros = 0, worst: Float = 0
        for i in x.indices {
            if x[i] == 0 {
                if y[i] != 0 { lostZeros += 1 }
                continue
            }
            let bound: Float
            switch type {
            case .f32: bound = 0
            case .f16: bound = abs(x[i]) * 0x1p-11 + 0x1p-25
            case .bf16: bound = abs(x[i]) * 0x1p-8
            case .q8_0, .q4_0:
                // One block of 32 along the row: Q8_0 rounds to half a step of amax/127
                // (+ the binary16 rounding of the step, 127 × 2⁻¹¹ steps); Q4_0 may clamp
                // the value opposite the block's extreme by a whole step of amax/8.
                let block = (i / 32) * 32
                let amax = x[block..<(block + 32)].map(abs).max()!
                bound = type == .q8_0 ? 0.57 * amax / 127 : 1.01 * amax / 8
            default: bound = .nan
            }
            worst = max(worst, abs(y[i] - x[i]) / max(bound, .leastNonzeroMagnitude))
        }
        #expect(lostZeros == 0, "\(name) as \(type): \(lostZeros) zeros came back non-zero", sourceLocation: sourceLocation)
        #expect(worst <= 1, "\(name) as \(type): an error of \(worst) × the rounding bound", sourceLocation: sourceLocation)
    }

    /// The stored codes of the zeros: Q8_0's q = 0, Q4_0's nibble 8 (which decodes to (8 − 8) × d = 0).
    static func expectZeroCodes(_ bytes: [UInt8], type: GGMLType, for written: Tensor, name: String,
                                sourceLocation: SourceLocation = #_sourceLocation) throws {
        let x = written.scalars
        var wrong = 0
        switch type {
        case .q8_0:
            for i in x.indices where x[i] == 0 && bytes[(i / 32) * 34 + 2 + i % 32] != 0 { wrong += 1 }
        case .q4_0:
            for i in x.indices where x[i] == 0 {
                let j = i % 32, byte = bytes[(i / 32) * 18 + 2 + j % 16]
                if (j < 16 ? byte & 0x0F : byte >> 4) != 8 { wrong += 1 }
            }
        default:
            for i in x.indices where x[i] == 0 {
                let width = type == .f32 ? 4 : 2
                if bytes[(i * width)..<((i + 1) * width)].contains(where: { $0 != 0 }) { wrong += 1 }
            }
        }
        #expect(wrong == 0, "\(name) as \(type): \(wrong) zeros stored with a non-zero code", sourceLocation: sourceLocation)
    }

    static func ggufFile(_ checkpoint: Checkpoint) -> GGUFFile? {
        if case .gguf(let file) = checkpoint.storage { return file }
        return nil
    }

    static func safetensors(_ checkpoint: Checkpoint) -> SafetensorsCheckpoint? {
        if case .huggingFace(let weights) = checkpoint.storage { return weights }
        return nil
    }
}
