import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// Source checkpoints for the export tests and the sparse tensors a job would
/// hand to `Checkpoint.export`.
enum ExportFixtures {
    /// C 32, H 4, Hkv 2, D 8, F 48, L 2: every projection's rows are whole
    /// 32-element blocks except ffn_down's (48), which exercises the F16 fallback.
    static let hidden = 32, heads = 4, kvHeads = 2, headDim = 8, ffn = 48, layers = 2

    static let projections: [TensorRole] = projectionsOf(layers)

    static func projectionsOf(_ layers: Int) -> [TensorRole] {
        (0..<layers).flatMap { layer in TensorRole.LayerTensor.projections.map { TensorRole.layer(layer, $0) } }
    }

    // MARK: - GGUF

    /// A GGUF as llama.cpp's quantiser leaves one: the embedding Q4_1 (a type
    /// losad cannot encode, so only a byte copy keeps it), the head Q8_0, the
    /// projections Q4_0 except ffn_down (F16, its rows are not whole blocks),
    /// norms F32; alignment 64 and `general.file_type` 2 (mostly Q4_0).
    static func writeGGUF(to path: String) throws {
        let tokenizer = try TokenizerFixtures.ggufMetadata("bpe_tiny.gguf.json")
        let vocabulary = try #require(tokenizer["tokenizer.ggml.tokens"]?.arrayValue).count
        var metadata = GGUFMetadata()
        metadata["general.architecture"] = .string("llama")
        metadata["general.name"] = .string("export-fixture")
        metadata["general.file_type"] = .uint32(2)
        metadata["general.alignment"] = .uint32(64)
        metadata["llama.block_count"] = .uint32(UInt32(layers))
        metadata["llama.context_length"] = .uint32(128)
        metadata["llama.embedding_length"] = .uint32(UInt32(hidden))
        metadata["llama.feed_forward_length"] = .uint32(UInt32(ffn))
        metadata["llama.attention.head_count"] = .uint32(UInt32(heads))
        metadata["llama.attention.head_count_kv"] = .uint32(UInt32(kvHeads))
        metadata["llama.rope.freq_base"] = .float32(10000)
        metadata["llama.attention.layer_norm_rms_epsilon"] = .float32(1e-5)
        for key in tokenizer.keys.sorted() { metadata[key] = tokenizer[key] }

        var random = TestRandom(seed: 11)
        func values(_ shape: [Int], scale: Float = 0.1) -> Tensor {
            Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in random.uniform(-scale, scale) })
        }
        var writer = GGUFWriter(metadata: metadata)
        // Q4_1 blocks built by hand: d = 0.01, m = -0.08 (binary16 0x211F, 0xAD1F), random nibbles.
        var q4_1: [UInt8] = []
        for _ in 0..<(vocabulary * hidden / 32) {
            q4_1 += [0x1F, 0x21, 0x1F, 0xAD] + (0..<16).map { _ in random.byte() }
        }
        writer.addTensor(named: "token_embd.weight", shape: [vocabulary, hidden], type: .q4_1, bytes: q4_1)
        writer.addTensor(named: "output_norm.weight", values([hidden], scale: 1), as: .f32)
        writer.addTensor(named: "output.weight", values([vocabulary, hidden]), as: .q8_0)
        let q = heads * headDim, kv = kvHeads * headDim
        for layer in 0..<layers {
            let shapes: [(TensorRole.LayerTensor, [Int], GGMLType)] = [
                (.attentionNorm, [hidden], .f32), (.query, [q, hidden], .q4_0), (.key, [kv, hidden], .q4_0),
                (.value, [kv, hidden], .q4_0), (.attentionOutput, [hidden, q], .q4_0), (.ffnNorm, [hidden], .f32),
                (.gate, [ffn, hidden], .q4_0), (.up, [ffn, hidden], .q4_0), (.down, [hidden, ffn], .f16),
            ]
            for (tensor, shape, type) in shapes {
                writer.addTensor(named: TensorRole.layer(layer, tensor).ggufName, values(shape, scale: type == .f32 ? 1 : 0.1), as: type)
            }
        }
        try writer.write(to: path)
    }

    // MARK: - Hugging Face

    /// The real Hugging Face folder transformers wrote for the Transformer
    /// tests (config.json, tokenizer.json, one F32 model.safetensors), copied
    /// into a scratch folder with the other files repositories carry.
    static func huggingFaceFolder() throws -> TemporaryDirectory {
        let folder = try TemporaryDirectory()
        try writeHuggingFaceFolder(at: folder.path)
        return folder
    }

    /// `huggingFaceFolder()` at `path`, a folder that exists.
    static func writeHuggingFaceFolder(at path: String) throws {
        let fixture = try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures/tiny-llama")
        for name in ["config.json", "tokenizer.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: fixture.appendingPathComponent(name).path, toPath: path + "/" + name)
        }
        try addRepositoryFiles(to: path)
    }

    /// The same model re-sharded into three BF16 files with an index, plus a
    /// rotary cache tensor losad ignores (it must be copied all the same).
    static func shardedHuggingFaceFolder() throws -> TemporaryDirectory {
        let single = try huggingFaceFolder()
        let weights = try SafetensorsFile(path: single.file("model.safetensors"))
        let folder = try TemporaryDirectory()
        var entries = try weights.tensorNames.map { name in
            SafetensorsWriter.Entry(name: name, tensor: try weights.tensor(named: name), dtype: name.hasSuffix("norm.weight") ? .f32 : .bf16)
        }
        entries.append(.init(name: "model.layers.0.self_attn.rotary_emb.inv_freq",
                             tensor: Tensor(shape: [headDim / 2], values: [1, 0.1, 0.01, 0.001]), dtype: .f32))
        let output = try SafetensorsWriter.writeSharded(entries, metadata: ["format": "pt"], toDirectory: folder.path, maxShardBytes: 12_000)
        try #require(output.shardFiles.count >= 3)
        for name in ["config.json", "tokenizer.json"] {
            try FileManager.default.copyItem(atPath: single.file(name), toPath: folder.file(name))
        }
        try addRepositoryFiles(to: folder.path)
        return folder
    }

    /// What a downloaded repository has besides the weights: files to copy
    /// (generation and tokenizer configs, a README, a subfolder, a link into
    /// a blob store as the Hugging Face cache makes them) and entries to leave
    /// out (dense weights in other formats, hidden entries, a FIFO).
    static func addRepositoryFiles(to path: String) throws {
        func file(_ name: String) -> String { path + "/" + name }
        try FileManager.default.createDirectory(atPath: file(".cache/blobs"), withIntermediateDirectories: true)
        try writeFile(file(".cache/blobs/3f2a"), Data(#"{"eos_token": "<|endoftext|>"}"#.utf8))
        try FileManager.default.createSymbolicLink(atPath: file("special_tokens_map.json"), withDestinationPath: ".cache/blobs/3f2a")
        try #require(mkfifo(file("events.fifo"), 0o644) == 0)
        try writeFile(file("generation_config.json"), Data(#"{"bos_token_id": 0, "eos_token_id": 0}"#.utf8))
        try writeFile(file("tokenizer_config.json"), Data(#"{"model_max_length": 64}"#.utf8))
        try writeFile(file("README.md"), Data("# tiny\n".utf8))
        try FileManager.default.createDirectory(atPath: file("original"), withIntermediateDirectories: false)
        try writeFile(file("original/params.json"), Data(#"{"dim": 32}"#.utf8))
        try writeFile(file("original/consolidated.00.pth"), Data(repeating: 7, count: 100))
        try writeFile(file("pytorch_model.bin"), Data(repeating: 7, count: 100))
        try writeFile(file(".gitattributes"), Data("*.safetensors filter=lfs\n".utf8))
    }

    static let copiedRepositoryFiles = ["README.md", "config.json", "generation_config.json", "original/params.json",
                                        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    static let skippedRepositoryFiles = [".cache", ".gitattributes", "events.fifo", "original/consolidated.00.pth", "pytorch_model.bin"]

    // MARK: - Sparse tensors

    /// A pruned copy of `tensor`: in every row the smallest-magnitude half set
    /// to exactly zero, as a Wanda-style mask leaves it; row 0 entirely zero and
    /// row 1's first 32 values zero but one, the edge cases of a block encoder.
    static func sparse(_ tensor: Tensor) -> Tensor {
        let result = tensor.copy()
        let k = tensor.rowLength
        result.withUnsafeMutableBufferPointer { values in
            for row in 0..<tensor.rowCount {
                let base = row * k
                let order = (0..<k).sorted { (abs(values[base + $0]), $0) < (abs(values[base + $1]), $1) }
                for column in order.prefix(k / 2) { values[base + column] = 0 }
                if row == 0 {
                    for column in 0..<k { values[base + column] = 0 }
                } else if row == 1 {
                    for column in 1..<min(k, 32) { values[base + column] = 0 }
                    values[base] = -0.05
                }
            }
        }
        return result
    }

    /// The sparse replacements of every projection of `checkpoint`.
    static func sparseProjections(of checkpoint: Checkpoint) throws -> [TensorRole: Tensor] {
        var replacements: [TensorRole: Tensor] = [:]
        for role in projections { replacements[role] = sparse(try checkpoint.tensor(role)) }
        return replacements
    }

    /// Every regular file under `path`, links followed (relative name → bytes),
    /// for checking that a source was not touched and what an export wrote.
    static func snapshot(_ path: String) throws -> [String: Data] {
        guard isFolder(path) else { return ["": try Data(contentsOf: URL(fileURLWithPath: path))] }
        var files: [String: Data] = [:]
        for case let name as String in FileManager.default.enumerator(atPath: path)! where isRegularFile(path + "/" + name) {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: path + "/" + name))
        }
        return files
    }

    static func isFolder(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }

    static func isRegularFile(_ path: String, followingLinks: Bool = true) -> Bool {
        var status = stat()
        return (followingLinks ? stat(path, &status) : lstat(path, &status)) == 0 && (status.st_mode & S_IFMT) == S_IFREG
    }
}
