import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// A source checkpoint → `SparseModelWriter` → `Checkpoint.open` gives back the model: its config,
/// tokenizer, dense tensors as the source stored them and sparse matrices as encoded.
@Suite struct SparseModelFileRoundTripTests {
    static let kinds = SparseValueKind.allCases

    /// The largest error one stored weight may have after `kind`'s quantisation, for a row whose
    /// largest magnitude is `rowMax`. s8: half a step of rowMax / 127 rounds, a whole one is allowed
    /// for the binary16 scale. s4: a loose bound, rowMax / 4: the nearest level is at most half the
    /// widest gap (−10…10, i.e. 10 scales) away, and the chosen scale is about max / 64 (the exact
    /// values are held to the encoder in SparseMatrixTests). f16: half an ulp.
    static func tolerance(_ kind: SparseValueKind, value: Float, rowMax: Float) -> Float {
        switch kind {
        case .s8: return rowMax / 127
        case .s4: return rowMax / 4
        case .f16: return abs(value) / 1024
        }
    }

    @Test(arguments: kinds)
    func aHuggingFaceModelComesBackWithItsConfigTokenizerAndEncodedWeights(kind: SparseValueKind) throws {
        let source = try SparseFileFixtures.huggingFaceSource()
        let output = try TemporaryDirectory()
        let path = output.file("tiny.sparse.gguf")
        let (result, weights) = try SparseFileFixtures.writeSparse(source.checkpoint, kind: kind, to: path)

        let sparse = try Checkpoint.open(path)
        #expect(sparse.format == .sparse && sparse.config == source.checkpoint.config)
        let text = "hello world, the tiny model"
        #expect(sparse.tokenizer.encode(text, addSpecialTokens: true) == source.checkpoint.tokenizer.encode(text, addSpecialTokens: true))
        #expect(result.bytesWritten == sparse.fileSize && sparse.fileSize == CheckpointExporter.fileSize(path))
        #expect(result.tensors.count(where: { $0.density != nil }) == ExportFixtures.projections.count)

        let loaded = try sparse.loadWeights()
        let sourceWeights = try source.checkpoint.loadWeights()
        #expect(Set(loaded.keys) == Set(sourceWeights.keys))
        for role in ExportFixtures.projections {
            let entry = try #require(sparse.entry(for: role))
            let written = try #require(result.tensors.first { $0.role == role })
            #expect(entry.name == role.huggingFaceName && entry.type == "sparse-\(kind)" && entry.sparseKind == kind)
            #expect(entry.byteCount == written.byteCount && entry.shape == weights[role]!.shape)
            // Exactly what Kernels' encoder and reference decoder give (loading decodes with the C kernels) …
            let pruned = try #require(weights[role])
            let expected = SparseMatrix.encode(pruned, kind: kind).decode()
            #expect(bitwiseDifference(try #require(loaded[role]).scalars, expected.scalars) == nil, "\(entry.name)")
            // … which is the pruned matrix: zeros kept, the rest within one quantisation step.
            let cols = pruned.shape[1]
            for (index, (got, want)) in zip(loaded[role]!.scalars, pruned.scalars).enumerated() {
                let row = index / cols
                let rowMax = pruned.scalars[(row * cols)..<((row + 1) * cols)].map(abs).max()!
                if want == 0 { #expect(got == 0, "\(entry.name)[\(index)]") }
                #expect(abs(got - want) <= Self.tolerance(kind, value: want, rowMax: rowMax), "\(entry.name)[\(index)]: \(got) for \(want)")
            }
        }
        for (role, tensor) in sourceWeights where !ExportFixtures.projections.contains(role) {
            #expect(try #require(loaded[role]).scalars == tensor.scalars, "\(role)")
            #expect(sparse.entry(for: role)?.sparseKind == nil)
        }
    }

    @Test func aGGUFModelKeepsItsMetadataAndItsQuantisedDenseTensorsBlockForBlock() throws {
        let source = try SparseFileFixtures.ggufSource()
        let output = try TemporaryDirectory()
        let path = output.file("tiny.sparse.gguf")
        // A job that also changed a norm: it is re-encoded as its source type (F32); the rest is copied.
        let norm = Tensor(shape: [ExportFixtures.hidden], values: (0..<ExportFixtures.hidden).map { Float($0) / 8 })
        let (result, weights) = try SparseFileFixtures.writeSparse(source.checkpoint, kind: .s4, to: path,
                                                                   extra: [.outputNorm: norm])
        let sourceFile = try GGUFFile(path: source.folder.file("source.gguf"))
        let file = try GGUFFile(path: path)

        #expect(file.version == 3 && file.alignment == 64)
        #expect(file.metadata["general.architecture"] == .string("losa-sparse"))
        #expect(file.metadata["losa.sparse.architecture"] == .string("llama"))
        #expect(file.metadata["losa.sparse.source_format"] == .string("gguf"))
        #expect(file.metadata["losa.sparsity"] == .float32(0.5))
        #expect(file.metadata["general.file_type"] == nil, "the dense file's bulk type no longer describes it")
        for (key, value) in sourceFile.metadata.entries where key.hasPrefix("llama.") || key.hasPrefix("tokenizer.") || key == "general.name" {
            #expect(file.metadata[key] == value, "\(key) is kept as the source had it")
        }

        let sparse = try Checkpoint.open(path)
        #expect(sparse.config == source.checkpoint.config)
        for role in [TensorRole.tokenEmbedding, .output, .layer(0, .attentionNorm)] {
            let stored = try #require(sparse.storedTensor(for: role))
            let original = try #require(sourceFile.tensorInfo(named: role.ggufName))
            #expect(stored.info.type == original.type && stored.info.shape == original.shape)
            #expect(Array(stored.bytes) == Array(sourceFile.rawBytes(of: original)), "\(role.ggufName) is copied byte for byte")
        }
        #expect(sparse.storedTensor(for: .tokenEmbedding)?.info.type == .q4_1)
        #expect(try sparse.tensor(.outputNorm).scalars == norm.scalars)
        #expect(result.tensors.first { $0.role == .outputNorm }?.type == "F32")
        #expect(sparse.storedTensor(for: .layer(0, .query)) == nil, "a sparse role has no dense bytes")

        // ffn_down's rows of 48 columns end in a partial group: still exact.
        let down = TensorRole.layer(1, .down)
        let expected = SparseMatrix.encode(weights[down]!, kind: .s4).decode()
        #expect(bitwiseDifference(try sparse.tensor(down).scalars, expected.scalars) == nil)
    }

    @Test func sparseMatricesAreViewsIntoTheMappedFileNotCopies() throws {
        let source = try SparseFileFixtures.huggingFaceSource()
        let output = try TemporaryDirectory()
        let path = output.file("tiny.sparse.gguf")
        try SparseFileFixtures.writeSparse(source.checkpoint, kind: .s8, to: path)
        let checkpoint = try Checkpoint.open(path)
        let file = try #require(checkpoint.sparseFile)
        let matrices = checkpoint.sparseMatrices()
        #expect(Set(matrices.keys) == Set(ExportFixtures.projections))
        for (role, matrix) in matrices {
            let name = try #require(role.huggingFaceName)
            let tensor = try #require(file.sparseTensor(named: name))
            #expect(matrix.rows == tensor.rows && matrix.cols == tensor.cols && matrix.kind == .s8)
            let mask = try #require(tensor.parts[.mask]), values = try #require(tensor.parts[.values])
            #expect(UnsafeRawPointer(matrix.masks) == file.file.rawBytes(of: mask).baseAddress)
            #expect(UnsafeRawPointer(matrix.values) == file.file.rawBytes(of: values).baseAddress)
            // The view is held to the values tensor's own bytes, not to what its offsets claim.
            #expect(matrix.valueBufferByteCount == file.file.rawBytes(of: values).count)
            #expect(Int(bitPattern: UnsafeRawPointer(matrix.masks)) % 64 == 0, "parts start on a cache line")
            #expect(matrix.storedByteCount == tensor.storedByteCount)
            #expect(abs(tensor.density - 0.5) < 0.1, "\(name): density \(tensor.density)")
        }
        #expect(checkpoint.sparseMatrix(for: .tokenEmbedding) == nil)
    }

    @Test func aPlainGGUFCheckpointHandsOutItsStoredBytesToo() throws {
        let source = try SparseFileFixtures.ggufSource()
        let stored = try #require(source.checkpoint.storedTensor(for: .layer(0, .query)))
        #expect(stored.info.type == .q4_0 && stored.bytes.count == stored.info.byteCount)
        #expect(source.checkpoint.sparseFile == nil && source.checkpoint.sparseMatrices().isEmpty)
        let huggingFace = try SparseFileFixtures.huggingFaceSource()
        #expect(huggingFace.checkpoint.storedTensor(for: .tokenEmbedding) == nil)
    }

    @Test(arguments: [SparseValueKind.s8, .s4])
    func emptyGroupsAreWrittenWithTheScaleZeroItself(kind: SparseValueKind) throws {
        let source = try SparseFileFixtures.huggingFaceSource()
        let output = try TemporaryDirectory()
        let path = output.file("tiny.sparse.gguf")
        try SparseFileFixtures.writeSparse(source.checkpoint, kind: kind, to: path)
        // Every pruned projection has an empty row 0 (SparseFileFixtures.prunedWeights).
        let file = try GGUFFile(path: path)
        let name = try #require(TensorRole.layer(0, .query).huggingFaceName)
        let scales = file.rawBytes(of: try #require(file.tensorInfo(named: name + ".scales")))
        #expect(scales[0] == 0 && scales[1] == 0, "+0 bits, not −0 (0x8000): \(scales[0]), \(scales[1])")
    }

    // MARK: - What the writer refuses

    @Test func theWriterRefusesWhatItCannotStoreBeforeCreatingTheFile() throws {
        let source = try SparseFileFixtures.huggingFaceSource()
        let output = try TemporaryDirectory()
        let path = output.file("out.gguf")
        var weights = try SparseFileFixtures.prunedWeights(of: source.checkpoint)
        let roles = Set(ExportFixtures.projections)
        let writer = SparseModelWriter(source: source.checkpoint, valueKind: .f16)

        let q = TensorRole.layer(0, .query)
        var huge = weights[q]!.scalars
        huge[5] = 1e6
        weights[q] = Tensor(shape: weights[q]!.shape, values: huge)
        let tooLarge = modelFormatError { try writer.write(weights: weights, sparse: roles, to: path) }
        #expect(tooLarge?.field == "sparse tensor 'model.layers.0.self_attn.q_proj.weight' element 5")
        #expect(tooLarge?.description.contains("f16") == true)
        huge[5] = .nan
        weights[q] = Tensor(shape: weights[q]!.shape, values: huge)
        #expect(modelFormatError { try writer.write(weights: weights, sparse: roles, to: path) }?.description.contains("not finite") == true)
        // In a row of 48 columns, element 50 is row 1's third: every group of every row is checked (the check once
        // stepped 64 weights at a time across rows and skipped row 1's first 16).
        let down = TensorRole.layer(0, .down)
        #expect(weights[down]!.shape[1] == 48)
        var downValues = try SparseFileFixtures.prunedWeights(of: source.checkpoint)[down]!.scalars
        downValues[50] = .infinity
        weights = try SparseFileFixtures.prunedWeights(of: source.checkpoint)
        weights[down] = Tensor(shape: weights[down]!.shape, values: downValues)
        #expect(modelFormatError { try writer.write(weights: weights, sparse: roles, to: path) }?.field
                == "sparse tensor 'model.layers.0.mlp.down_proj.weight' element 50")
        weights = try SparseFileFixtures.prunedWeights(of: source.checkpoint)

        let missing = modelFormatError { try writer.write(weights: weights, sparse: roles.union([.tokenEmbedding]), to: path) }
        #expect(missing?.field == "sparse tensor 'model.embed_tokens.weight'")
        let none = modelFormatError { try writer.write(weights: weights, sparse: [], to: path) }
        #expect(none?.field == "sparse roles")
        let reserved = SparseModelWriter(source: source.checkpoint, metadata: GGUFMetadata([("losa.sparse.version", .uint32(9))]))
        #expect(modelFormatError { try reserved.write(weights: weights, sparse: roles, to: path) }?.field == "metadata key 'losa.sparse.version'")
        let notGGUF = modelFormatError { try writer.write(weights: weights, sparse: roles, to: output.file("out.bin")) }
        #expect(notGGUF?.description.contains("must end in .gguf") == true)
        #expect(output.contents.isEmpty, "nothing was written: \(output.contents)")

        try writer.write(weights: weights, sparse: roles, to: path)
        let exists = modelFormatError { try writer.write(weights: weights, sparse: roles, to: path) }
        #expect(exists?.description.contains("already exists") == true)
        let fromSparse = SparseModelWriter(source: try Checkpoint.open(path))
        #expect(modelFormatError { try fromSparse.write(weights: [:], sparse: roles, to: output.file("again.gguf")) }?.isUnsupported == true)
        #expect(modelFormatError { try Checkpoint.open(path).export(replacing: [:], to: output.file("export.gguf")) }?.isUnsupported == true)
        #expect(output.contents == ["out.gguf"])
    }
}
