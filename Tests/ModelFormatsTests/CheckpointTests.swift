import Foundation
import Kernels
import Testing
@testable import ModelFormats

@Suite struct CheckpointTests {
    /// CI must not skip the comparisons against the reference implementations silently.
    @Test(.enabled(if: TestReferences.setting("CI") == "true"))
    func continuousIntegrationRunsWithTheReferenceData() {
        #expect(TestReferences.demoModel != nil && TestReferences.referenceDirectory != nil && TestReferences.python != nil,
                "run the suite through `make test`, which prepares the references")
    }

    // MARK: - The demo model

    @Test(.enabled(if: TestReferences.demoModel != nil && TestReferences.referenceDirectory != nil,
                   "set LOSAD_DEMO_MODEL and LOSAD_REFERENCE_DIR (scripts/prepare-test-references.sh prints them)"))
    func theDemoModelLoadsAndEveryTensorMatchesTheReferenceReaderBitForBit() throws {
        let model = try #require(TestReferences.demoModel)
        let checkpoint = try Checkpoint.open(model)
        let c = checkpoint.config
        #expect(checkpoint.format == .gguf && c.architecture == .llama && c.ropeLayout == .adjacent)
        #expect([c.layerCount, c.hiddenSize, c.headCount, c.kvHeadCount, c.headDim, c.ffnSize, c.vocabSize] == [30, 576, 9, 3, 64, 1536, 49152] as [Int])
        #expect(c.tiedEmbeddings && c.parameterCount == 134_515_008)
        #expect(checkpoint.tokenizer.algorithm == .byteLevelBPE && checkpoint.tokenizer.vocabularySize == 49152)

        // gguf-py's dequantisation of every tensor (scripts/fixtures/gguf_dump_reference.py).
        let stem = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
        let reference = URL(fileURLWithPath: try #require(TestReferences.referenceDirectory))
        let index = try jsonObject(Data(contentsOf: reference.appendingPathComponent(stem + ".json")))
        let entries = try #require(index["tensors"] as? [[String: Any]])
        let dump = try MappedFile(path: reference.appendingPathComponent(stem + ".f32").path)
        let weights = try checkpoint.loadWeights()
        #expect(weights.count == entries.count)
        var differing: [String] = []
        for entry in entries {
            let name = try #require(entry["name"] as? String)
            let offset = try #require(entry["offset"] as? Int), count = try #require(entry["count"] as? Int)
            let role = try #require(TensorRole(ggufName: name))
            let ours = try #require(weights[role], "\(name) was not loaded")
            #expect(ours.shape == entry["shape"] as? [Int], "\(name)")
            let same = ours.count == count && memcmp(ours.pointer, dump.bytes.baseAddress! + offset * 4, count * 4) == 0
            if !same { differing.append(name) }
        }
        #expect(differing.isEmpty, "tensors whose Float32 bits differ from gguf-py's: \(differing)")
    }

    // MARK: - A tiny model in both formats

    /// A 2-layer LLaMA with GQA and the tiny BPE vocabulary of the tokenizer fixtures.
    struct TinyModel {
        static let hidden = 16, heads = 4, kvHeads = 2, headDim = 4, ffn = 24, layers = 2
        let vocabulary: Int
        let tensors: [(role: TensorRole, tensor: Tensor)]

        init() throws {
            let tokenizerData = try TokenizerFixtures.data("bpe_tiny.tokenizer.json")
            vocabulary = try Tokenizer(tokenizerJSON: tokenizerData, file: "bpe_tiny.tokenizer.json").vocabularySize
            var generator = RandomGenerator(seed: 7)
            var tensors: [(TensorRole, Tensor)] = []
            let config = try ModelConfig(huggingFaceConfig: Data(TinyModel.configJSON(vocabulary: vocabulary).utf8), file: "config.json")
            for (role, shape) in Checkpoint.expectedShapes(for: config).sorted(by: { "\($0.key)" < "\($1.key)" }) {
                let tensor = Tensor(zeros: shape)
                generator.fillUniform(tensor, in: -1, 1)
                tensors.append((role, tensor))
            }
            self.tensors = tensors
        }

        static func configJSON(vocabulary: Int, extra: String = "") -> String {
            """
            {"model_type": "llama", "hidden_size": \(hidden), "num_attention_heads": \(heads), "num_key_value_heads": \(kvHeads),
             "intermediate_size": \(ffn), "num_hidden_layers": \(layers), "vocab_size": \(vocabulary),
             "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false\(extra)}
            """
        }

        /// Writes config.json, tokenizer.json and model.safetensors into a new folder.
        func writeHuggingFaceFolder(skipping skipped: TensorRole? = nil, extra: [SafetensorsWriter.Entry] = []) throws -> TemporaryDirectory {
            let folder = try TemporaryDirectory()
            try writeFile(folder.file("config.json"), Data(TinyModel.configJSON(vocabulary: vocabulary).utf8))
            try writeFile(folder.file("tokenizer.json"), TokenizerFixtures.data("bpe_tiny.tokenizer.json"))
            let entries = tensors.filter { $0.role != skipped }.map {
                SafetensorsWriter.Entry(name: $0.role.huggingFaceName!, tensor: $0.tensor)
            } + extra
            try SafetensorsWriter.write(entries, to: folder.file("model.safetensors"))
            return folder
        }

        /// The GGUF twin: llama.cpp names and metadata, q/k rows permuted as llama.cpp's converter does.
        func writeGGUF(to path: String) throws {
            var metadata = GGUFMetadata()
            metadata["general.architecture"] = .string("llama")
            metadata["llama.block_count"] = .uint32(UInt32(TinyModel.layers))
            metadata["llama.context_length"] = .uint32(128)
            metadata["llama.embedding_length"] = .uint32(UInt32(TinyModel.hidden))
            metadata["llama.feed_forward_length"] = .uint32(UInt32(TinyModel.ffn))
            metadata["llama.attention.head_count"] = .uint32(UInt32(TinyModel.heads))
            metadata["llama.attention.head_count_kv"] = .uint32(UInt32(TinyModel.kvHeads))
            metadata["llama.rope.freq_base"] = .float32(10000)
            metadata["llama.attention.layer_norm_rms_epsilon"] = .float32(1e-5)
            for (key, value) in try TokenizerFixtures.ggufMetadata("bpe_tiny.gguf.json") where key.hasPrefix("tokenizer.") {
                metadata[key] = value
            }
            var writer = GGUFWriter(metadata: metadata)
            for (role, tensor) in tensors {
                var stored = tensor
                if case .layer(_, .query) = role { stored = QKPermutation.toAdjacent(tensor, heads: TinyModel.heads) }
                if case .layer(_, .key) = role { stored = QKPermutation.toAdjacent(tensor, heads: TinyModel.kvHeads) }
                writer.addTensor(named: role.ggufName, stored, as: .f32)
            }
            try writer.write(to: path)
        }
    }

    @Test func aHuggingFaceFolderAndItsGGUFTwinDescribeTheSameModel() throws {
        let tiny = try TinyModel()
        let folder = try tiny.writeHuggingFaceFolder()
        let ggufFolder = try TemporaryDirectory()
        try tiny.writeGGUF(to: ggufFolder.file("tiny.gguf"))
        let huggingFace = try Checkpoint.open(folder.path)
        let gguf = try Checkpoint.open(ggufFolder.file("tiny.gguf"))
        #expect(huggingFace.format == .huggingFace && gguf.format == .gguf)
        #expect(huggingFace.config.ropeLayout == .halfSplit && gguf.config.ropeLayout == .adjacent)
        var sameConfig = gguf.config
        sameConfig.ropeLayout = .halfSplit
        sameConfig.rmsNormEpsilon = huggingFace.config.rmsNormEpsilon
        #expect(sameConfig == huggingFace.config)
        #expect(huggingFace.tokenizer.encode("hello world", addSpecialTokens: true)
                == gguf.tokenizer.encode("hello world", addSpecialTokens: true))

        let fromFolder = try huggingFace.loadWeights(), fromGGUF = try gguf.loadWeights()
        #expect(Set(fromFolder.keys) == Set(fromGGUF.keys))
        for (role, tensor) in tiny.tensors {
            var ggufTensor = try #require(fromGGUF[role])
            if case .layer(_, .query) = role { ggufTensor = QKPermutation.toHalfSplit(ggufTensor, heads: TinyModel.heads) }
            if case .layer(_, .key) = role { ggufTensor = QKPermutation.toHalfSplit(ggufTensor, heads: TinyModel.kvHeads) }
            #expect(fromFolder[role]?.scalars == tensor.scalars, "\(role)")
            #expect(ggufTensor.scalars == tensor.scalars, "\(role) after undoing the q/k permutation")
        }
    }

    @Test func aMissingTensorIsNamed() throws {
        let tiny = try TinyModel()
        let folder = try tiny.writeHuggingFaceFolder(skipping: .layer(1, .down))
        #expect(throws: ModelFormatError.invalid(file: folder.path, field: "tensor 'model.layers.1.mlp.down_proj.weight'",
                                                 reason: "missing; the config describes it")) {
            try Checkpoint.open(folder.path)
        }
    }

    @Test func aTensorOfTheWrongShapeOrALeftoverIsNamed() throws {
        let tiny = try TinyModel()
        let wrong = try tiny.writeHuggingFaceFolder(skipping: .layer(0, .up), extra: [
            .init(name: "model.layers.0.mlp.up_proj.weight", tensor: Tensor(zeros: [TinyModel.ffn, TinyModel.hidden + 1])),
        ])
        let leftover = try tiny.writeHuggingFaceFolder(extra: [
            .init(name: "model.layers.5.mlp.up_proj.weight", tensor: Tensor(zeros: [TinyModel.ffn, TinyModel.hidden])),
        ])
        let unknown = try tiny.writeHuggingFaceFolder(extra: [
            .init(name: "model.layers.0.mlp.experts.0.weight", tensor: Tensor(zeros: [2])),
        ])
        let rotaryCache = try tiny.writeHuggingFaceFolder(extra: [
            .init(name: "model.layers.0.self_attn.rotary_emb.inv_freq", tensor: Tensor(zeros: [2])),
        ])
        #expect(throws: ModelFormatError.invalid(file: wrong.path, field: "tensor 'model.layers.0.mlp.up_proj.weight'",
                                                 reason: "shape [24, 17] where the config implies [24, 16]")) {
            try Checkpoint.open(wrong.path)
        }
        #expect(throws: ModelFormatError.invalid(file: leftover.path, field: "tensor 'model.layers.5.mlp.up_proj.weight'",
                                                 reason: "left over: the config (2 layers, bias false) has no place for it")) {
            try Checkpoint.open(leftover.path)
        }
        #expect(throws: ModelFormatError.self) { try Checkpoint.open(unknown.path) }
        #expect(try Checkpoint.open(rotaryCache.path).tensors.contains { $0.role == nil })
    }

    @Test func aFolderWithoutConfigOrTokenizerOrAPathThatIsNotThereIsRefusedByName() throws {
        let tiny = try TinyModel()
        let folder = try tiny.writeHuggingFaceFolder()
        try FileManager.default.removeItem(atPath: folder.file("tokenizer.json"))
        #expect(throws: ModelFormatError.io(file: folder.file("tokenizer.json"), operation: "read",
                                            reason: "a Hugging Face model folder needs tokenizer.json")) {
            try Checkpoint.open(folder.path)
        }
        try FileManager.default.removeItem(atPath: folder.file("config.json"))
        #expect(throws: ModelFormatError.io(file: folder.file("config.json"), operation: "read",
                                            reason: "a Hugging Face model folder needs config.json")) {
            try Checkpoint.open(folder.path)
        }
        #expect(throws: ModelFormatError.io(file: folder.file("nothing.gguf"), operation: "open", reason: "no such file or folder")) {
            try Checkpoint.open(folder.file("nothing.gguf"))
        }
    }
}
