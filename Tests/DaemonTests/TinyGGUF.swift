import Foundation
import ModelFormats

/// Writes a one-layer LLaMA GGUF with a 32-token SentencePiece vocabulary — small enough to write
/// in a test, complete enough for `Checkpoint.open`. `seed` varies the weights (and so the content hash).
enum TinyGGUF {
    static func write(to path: String, seed: UInt32 = 1) throws {
        let tokens = ["<unk>", "<s>", "</s>"] + (0..<29).map { "tok\($0)" }
        let config = try ModelConfig(huggingFaceConfig: Data("""
            {"model_type": "llama", "hidden_size": 8, "num_attention_heads": 2, "num_key_value_heads": 1,
             "intermediate_size": 16, "num_hidden_layers": 1, "vocab_size": \(tokens.count),
             "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false}
            """.utf8), file: "config.json")
        var metadata = GGUFMetadata()
        metadata["general.architecture"] = .string("llama")
        metadata["llama.block_count"] = .uint32(1)
        metadata["llama.context_length"] = .uint32(64)
        metadata["llama.embedding_length"] = .uint32(8)
        metadata["llama.feed_forward_length"] = .uint32(16)
        metadata["llama.attention.head_count"] = .uint32(2)
        metadata["llama.attention.head_count_kv"] = .uint32(1)
        metadata["llama.rope.freq_base"] = .float32(10000)
        metadata["llama.attention.layer_norm_rms_epsilon"] = .float32(1e-5)
        metadata["tokenizer.ggml.model"] = .string("llama")
        metadata["tokenizer.ggml.tokens"] = .array(elementType: .string, tokens.map { .string($0) })
        var writer = GGUFWriter(metadata: metadata)
        var state = seed
        for (role, shape) in Checkpoint.expectedShapes(for: config).sorted(by: { $0.key.ggufName < $1.key.ggufName }) {
            var bytes: [UInt8] = []
            for _ in 0..<shape.reduce(1, *) {
                state = state &* 1_664_525 &+ 1_013_904_223   // any values will do; the seed makes them differ
                withUnsafeBytes(of: Float(Int32(bitPattern: state >> 8) % 1000) / 1000) { bytes += $0 }
            }
            writer.addTensor(named: role.ggufName, shape: shape, type: .f32, bytes: bytes)
        }
        try writer.write(to: path)
    }
}
