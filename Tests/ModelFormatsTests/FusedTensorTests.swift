import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// Phi-3's fused tensors (`FusedProjection`): split into their roles' rows when a checkpoint opens,
/// stacked again by the exports and the sparse file under phi3's own names, bit for bit.
@Suite struct FusedTensorTests {
    /// The tiny Phi-3 of the Transformer tests (transformers' Phi3ForCausalLM: C 32, 4 heads, 2 kv heads, F 48).
    static let tinyPhi3 = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TransformerTests/Fixtures/tiny-phi3").path
    /// llama.cpp's F32 GGUF of it (scripts/prepare-test-references.sh rebuilds it).
    static let tinyPhi3GGUF = TestReferences.referenceDirectory.map { $0 + "/families/tiny-phi3.gguf" }

    static let projections: [TensorRole] = (0..<2).flatMap { layer in TensorRole.LayerTensor.projections.map { TensorRole.layer(layer, $0) } }
    static let fused: [(FusedProjection, huggingFace: String)] = [(.queryKeyValue, "self_attn.qkv_proj.weight"), (.gateUp, "mlp.gate_up_proj.weight")]

    /// Rows of each role stacked in stored order.
    static func stacked(_ parts: [Tensor]) -> [Float] { parts.flatMap(\.scalars) }

    @Test func aFusedTensorSplitsIntoItsRolesRows() throws {
        let checkpoint = try Checkpoint.open(Self.tinyPhi3)
        let file = try SafetensorsFile(path: Self.tinyPhi3 + "/model.safetensors")
        #expect(checkpoint.tensors.count == file.tensors.count, "the tensor table is the file's")
        #expect(checkpoint.tensors.filter { !$0.parts.isEmpty }.count == 4 && checkpoint.tensors.allSatisfy(\.isUsed))
        let weights = try checkpoint.loadWeights()
        for layer in 0..<2 {
            for (fused, suffix) in Self.fused {
                let name = "model.layers.\(layer).\(suffix)"
                let roles = fused.members.map { TensorRole.layer(layer, $0) }
                let parts = try roles.map { try checkpoint.tensor($0) }
                #expect(Self.stacked(parts) == (try file.tensor(named: name)).scalars)
                #expect(roles.map { weights[$0]!.scalars } == parts.map(\.scalars))
                for (role, rows) in zip(roles, fused.rowRanges(in: checkpoint.config)) {
                    let entry = try #require(checkpoint.entry(for: role))
                    #expect(entry.name == name && entry.rows == rows && entry.shape == [rows.count, 32])
                }
            }
        }
        #expect(checkpoint.entry(for: .layer(1, .key))?.rows == 32..<48 && checkpoint.entry(for: .layer(1, .up))?.rows == 48..<96)
        #expect(checkpoint.entry(for: .layer(1, .attentionOutput))?.rows == nil)
    }

    /// A fused tensor whose shape is not what the config implies is refused by name (its split depends on it).
    @Test func aFusedTensorOfTheWrongShapeIsRefusedByName() throws {
        let folder = try TemporaryDirectory()
        for name in ["config.json", "tokenizer.json"] {
            try FileManager.default.copyItem(atPath: Self.tinyPhi3 + "/" + name, toPath: folder.file(name))
        }
        let source = try SafetensorsFile(path: Self.tinyPhi3 + "/model.safetensors")
        var entries: [SafetensorsWriter.Entry] = []
        for info in source.tensors {
            var tensor = try source.tensor(named: info.name)
            if info.name == "model.layers.1.self_attn.qkv_proj.weight" { tensor = tensor.slice(0..<48).copy() }
            entries.append(SafetensorsWriter.Entry(name: info.name, tensor: tensor, dtype: .f32))
        }
        try SafetensorsWriter.write(entries, metadata: ["format": "pt"], to: folder.file("model.safetensors"))
        #expect(throws: ModelFormatError.invalid(file: folder.file("model.safetensors"), field: "tensor 'model.layers.1.self_attn.qkv_proj.weight'",
                                                 reason: "shape [48, 32] where the config implies [64, 32] (query, key, value stacked)")) {
            try Checkpoint.open(folder.path)
        }
    }

    /// Hugging Face → Hugging Face: each fused tensor of the export is its roles' replacements stacked,
    /// bit for bit, under phi3's own names; a role not replaced keeps the source's rows.
    @Test func anExportStacksTheReplacedRowsUnderPhi3sOwnNames() throws {
        let source = try Checkpoint.open(Self.tinyPhi3)
        var replacements: [TensorRole: Tensor] = [:]
        for role in Self.projections { replacements[role] = ExportFixtures.sparse(try source.tensor(role)) }
        let out = try TemporaryDirectory()
        let result = try source.export(replacing: replacements, as: .f32, to: out.file("model"))
        let sourceFile = try SafetensorsFile(path: Self.tinyPhi3 + "/model.safetensors")
        #expect(result.tensors.map(\.name) == sourceFile.tensors.map(\.name))
        #expect(result.tensors.filter(\.replaced).count == 8 && result.tensors.filter { $0.replaced && $0.role == nil }.count == 4)
        let written = try SafetensorsFile(path: out.file("model/model.safetensors"))
        for layer in 0..<2 {
            for (fused, suffix) in Self.fused {
                let parts = fused.members.map { replacements[.layer(layer, $0)]! }
                #expect((try written.tensor(named: "model.layers.\(layer).\(suffix)")).scalars == Self.stacked(parts))
            }
        }
        let exported = try Checkpoint.open(out.file("model"))
        #expect(exported.config == source.config)
        for role in Self.projections { #expect(try exported.tensor(role).scalars == replacements[role]!.scalars) }

        // Only k of layer 1: q and v rows are the source's.
        let partial = try source.export(replacing: [.layer(1, .key): replacements[.layer(1, .key)]!], as: .f32, to: out.file("partial"))
        #expect(partial.tensors.filter(\.replaced).map(\.name) == ["model.layers.1.self_attn.qkv_proj.weight"])
        let partialFile = try SafetensorsFile(path: out.file("partial/model.safetensors"))
        let expected = Self.stacked([try source.tensor(.layer(1, .query)), replacements[.layer(1, .key)]!, try source.tensor(.layer(1, .value))])
        #expect((try partialFile.tensor(named: "model.layers.1.self_attn.qkv_proj.weight")).scalars == expected)
    }

    /// GGUF → GGUF in llama.cpp's names (`attn_qkv`, and `ffn_up` holding gate then up): F32 stacked bit for
    /// bit; Q8_0 (blocks run along rows) read in place as each role's byte range, equal to its Float32 rows.
    @Test(.enabled(if: tinyPhi3GGUF != nil, "set LOSAD_REFERENCE_DIR (scripts/prepare-test-references.sh prints it)"))
    func aGGUFExportStacksTheRowsAndItsBlocksAreReadInPlacePerRole() throws {
        let source = try Checkpoint.open(try #require(Self.tinyPhi3GGUF))
        #expect(source.entry(for: .layer(0, .gate))?.name == "blk.0.ffn_up.weight" && source.entry(for: .layer(0, .up))?.rows == 48..<96)
        var replacements: [TensorRole: Tensor] = [:]
        for role in Self.projections { replacements[role] = ExportFixtures.sparse(try source.tensor(role)) }
        let out = try TemporaryDirectory()
        try source.export(replacing: replacements, as: .f32, to: out.file("f32.gguf"))
        let written = try GGUFFile(path: out.file("f32.gguf"))
        #expect(written.tensors.map(\.name) == (try GGUFFile(path: source.path)).tensors.map(\.name))
        for layer in 0..<2 {
            for (fused, name) in [(FusedProjection.queryKeyValue, "attn_qkv"), (.gateUp, "ffn_up")] {
                let parts = fused.members.map { replacements[.layer(layer, $0)]! }
                #expect((try written.tensor(named: "blk.\(layer).\(name).weight")).scalars == Self.stacked(parts))
            }
        }

        try source.export(replacing: replacements, as: .q8_0, to: out.file("q8.gguf"))
        let quantized = try Checkpoint.open(out.file("q8.gguf"))
        let inPlace = try quantized.inPlaceMatrices()
        // Every fused role is Q8_0 (rows of C = 32: one block); down's rows of 48 are not whole blocks (F16).
        for role in Self.projections where quantized.entry(for: role)?.type == "Q8_0" || quantized.entry(for: role)?.rows != nil {
            #expect(quantized.entry(for: role)?.type == "Q8_0")
            let matrix = try #require(inPlace[role] as? QuantizedMatrix)
            #expect([matrix.rows, matrix.cols] == quantized.entry(for: role)!.shape)
            let values = Tensor(zeros: [matrix.rows, matrix.cols])
            matrix.dequantize(rows: 0..<matrix.rows, into: values.pointer, path: .best)
            #expect(values.scalars == (try quantized.tensor(role)).scalars, "\(role)")
        }
    }

    /// The sparse file keeps the source's names: one sparse matrix per fused tensor, its rows stacked;
    /// each role reads back as that band of rows (the same encoding as the role's rows alone).
    @Test func theSparseFileStoresAFusedTensorAsOneMatrixAndReadsItsRolesAsBands() throws {
        let source = try Checkpoint.open(Self.tinyPhi3)
        var weights: [TensorRole: Tensor] = [:]
        for role in Self.projections { weights[role] = ExportFixtures.sparse(try source.tensor(role)) }
        let out = try TemporaryDirectory()
        let result = try SparseModelWriter(source: source, valueKind: .s8).write(weights: weights, sparse: Set(Self.projections),
                                                                               to: out.file("model.gguf"))
        let names = Set(result.tensors.filter { $0.density != nil }.map(\.name))
        #expect(names == Set((0..<2).flatMap { layer in
            ["qkv_proj", "o_proj"].map { "model.layers.\(layer).self_attn.\($0).weight" }
                + ["gate_up_proj", "down_proj"].map { "model.layers.\(layer).mlp.\($0).weight" }
        }))
        let sparse = try Checkpoint.open(out.file("model.gguf"))
        #expect(sparse.config == source.config && sparse.format == .sparse)
        let matrices = sparse.sparseMatrices()
        #expect(matrices.count == Self.projections.count)
        for role in Self.projections {
            let matrix = try #require(matrices[role])
            let alone = SparseMatrix.encode(weights[role]!, kind: .s8)
            #expect(matrix.decode().scalars == alone.decode().scalars, "\(role)")
            #expect(try sparse.tensor(role).scalars == alone.decode().scalars)
        }

        // A fused tensor is one matrix: its roles are sparse together or not at all.
        #expect(throws: ModelFormatError.invalid(file: out.file("mixed.gguf"), field: "sparse tensor 'model.layers.0.self_attn.qkv_proj.weight'",
                                                 reason: "it holds query, key, value fused: all of them are stored sparse or none")) {
            try SparseModelWriter(source: source).write(weights: weights, sparse: [.layer(0, .query), .layer(0, .down)],
                                                        to: out.file("mixed.gguf"))
        }
        #expect(!FileManager.default.fileExists(atPath: out.file("mixed.gguf")))
    }
}
