import Foundation
import Kernels
import Testing
@testable import ModelFormats

@Suite struct ModelConfigTests {
    /// SmolLM2-135M-Instruct's config.json as published (the demo model's Hugging Face twin).
    static let smolLM2 = """
    {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 1, "eos_token_id": 2,
     "hidden_act": "silu", "hidden_size": 576, "initializer_range": 0.041666666666666664,
     "intermediate_size": 1536, "max_position_embeddings": 8192, "model_type": "llama",
     "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3, "pretraining_tp": 1,
     "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 100000, "tie_word_embeddings": true,
     "torch_dtype": "bfloat16", "transformers_version": "4.42.3", "use_cache": true, "vocab_size": 49152}
    """

    func config(_ json: String) throws -> ModelConfig {
        try ModelConfig(huggingFaceConfig: Data(json.utf8), file: "config.json")
    }

    func replacing(_ key: String, with value: String) -> String {
        let pattern = "\"\(key)\": "
        let start = ModelConfigTests.smolLM2.range(of: pattern)!.upperBound
        let end = ModelConfigTests.smolLM2[start...].firstIndex(where: { $0 == "," || $0 == "}" })!
        return ModelConfigTests.smolLM2.replacingCharacters(in: start..<end, with: value)
    }

    @Test func smolLM2ConfigReadsWithItsDefaults() throws {
        let c = try config(Self.smolLM2)
        #expect(c.architecture == .llama)
        #expect((c.layerCount, c.hiddenSize, c.headCount, c.kvHeadCount, c.headDim) == (30, 576, 9, 3, 64))
        #expect((c.ffnSize, c.vocabSize, c.contextLength) == (1536, 49152, 8192))
        #expect(c.ropeTheta == 100_000 && c.rmsNormEpsilon == 1e-5)
        #expect(c.tiedEmbeddings && !c.attentionBias && c.ropeLayout == .halfSplit && c.ropeScaling == nil)
        // 134,515,008 is the parameter count transformers reports for SmolLM2-135M.
        #expect(c.parameterCount == 134_515_008)
    }

    @Test func anUnsupportedArchitectureIsRefusedByName() {
        #expect(throws: ModelFormatError.unsupported(file: "config.json", field: "key 'model_type'",
                                                     reason: "'bert' is not an architecture losad runs (gemma2, gemma3_text, llama, mistral, qwen2, qwen3)")) {
            try config(replacing("model_type", with: "\"bert\""))
        }
    }

    @Test func errorsNameTheKeyAndTheValue() {
        #expect(throws: ModelFormatError.invalid(file: "config.json", field: "key 'num_key_value_heads'",
                                                 reason: "2 does not divide the 9 attention heads")) {
            try config(replacing("num_key_value_heads", with: "2"))
        }
        #expect(throws: ModelFormatError.invalid(file: "config.json", field: "key 'hidden_size'",
                                                 reason: "expected Int, found 576.5")) {
            try config(replacing("hidden_size", with: "576.5"))
        }
        #expect(throws: ModelFormatError.self) { try config("[1, 2]") }
        #expect(throws: ModelFormatError.self) { try config("{\"model_type\": ") }
        #expect(throws: ModelFormatError.invalid(file: "config.json", field: "key 'num_hidden_layers'", reason: "0 is not in 1…1024")) {
            try config(replacing("num_hidden_layers", with: "0"))
        }
    }

    @Test func mistralSlidesOnEveryLayerWithAWindowAndNotWithout() throws {
        let windowed = replacing("model_type", with: "\"mistral\"").replacingOccurrences(of: "\"use_cache\"", with: "\"sliding_window\": 4096, \"use_cache\"")
        let slid = try config(windowed)
        #expect(slid.block.slidingWindow == 4096 && (0..<slid.layerCount).allSatisfy { slid.span(ofLayer: $0) == .sliding })
        let plain = replacing("model_type", with: "\"mistral\"").replacingOccurrences(of: "\"use_cache\"", with: "\"sliding_window\": null, \"use_cache\"")
        let full = try config(plain)
        #expect(full.architecture == .mistral && full.block.slidingWindow == nil
                && (0..<full.layerCount).allSatisfy { full.span(ofLayer: $0) == .full })
    }

    @Test func qwen2HasAttentionBiases() throws {
        #expect(try config(replacing("model_type", with: "\"qwen2\"")).attentionBias)
    }

    @Test func llama3RopeScalingSlowsOnlyTheLongWavelengths() throws {
        let scaled = try config(replacing("rope_scaling", with: """
            {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"}
            """))
        let plain = try config(Self.smolLM2)
        let a = plain.ropeInverseFrequencies, b = scaled.ropeInverseFrequencies
        #expect(a.count == 32 && b.count == 32)
        #expect(b[0] == a[0])  // the fastest rotation keeps its frequency
        #expect(abs(b[31] - a[31] / 8) < 1e-18)  // the slowest is divided by the factor
        #expect(zip(a, b).allSatisfy { $1 <= $0 && $1 >= $0 / 8 })
        #expect(throws: ModelFormatError.self) {
            try config(replacing("rope_scaling", with: "{\"type\": \"yarn\", \"factor\": 4.0}"))
        }
    }

    /// transformers ≥ 5 writes `rope_parameters` {rope_type, rope_theta, …} in place of `rope_theta` and `rope_scaling`.
    @Test func ropeParametersOfTransformers5GiveThetaAndLlama3Scaling() throws {
        let plain = try config(replacing("rope_theta", with: "null").replacingOccurrences(
            of: "\"rope_scaling\": null", with: "\"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"}"))
        #expect(plain.ropeTheta == 1_000_000 && plain.ropeScaling == nil)
        let scaled = try config(replacing("rope_theta", with: "null").replacingOccurrences(
            of: "\"rope_scaling\": null", with: """
            "rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
            """))
        #expect(scaled.ropeTheta == 500_000)
        #expect(scaled.ropeScaling == ModelConfig.Llama3RopeScaling(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4,
                                                                    originalContextLength: 8192))
        #expect(throws: ModelFormatError.unsupported(file: "config.json", field: "key 'rope_parameters.rope_type'",
                                                     reason: "'yarn' (losad runs unscaled, linear and llama3-style rope)")) {
            try config(Self.smolLM2.replacingOccurrences(
                of: "\"rope_scaling\": null", with: "\"rope_parameters\": {\"rope_theta\": 10000.0, \"rope_type\": \"yarn\"}"))
        }
    }

    @Test func tensorNamesMapBetweenFormatsBothWays() {
        for layer in [0, 7, 29] {
            for tensor in TensorRole.LayerTensor.allCases {
                let role = TensorRole.layer(layer, tensor)
                #expect(TensorRole(ggufName: role.ggufName) == role)
                // Gemma names its four norms its own way (its post_attention_layernorm is LLaMA's name of the MLP's input norm).
                #expect(TensorRole(huggingFaceName: role.huggingFaceName(in: .gemma3)!, architecture: .gemma3) == role)
                if ![.attentionPostNorm, .ffnPostNorm].contains(tensor) {
                    #expect(TensorRole(huggingFaceName: role.huggingFaceName!) == role)
                }
            }
        }
        #expect(TensorRole.layer(2, .ffnNorm).huggingFaceName(in: .gemma2) == "model.layers.2.pre_feedforward_layernorm.weight")
        #expect(TensorRole.layer(2, .attentionPostNorm).huggingFaceName(in: .gemma2) == "model.layers.2.post_attention_layernorm.weight")
        #expect(TensorRole.layer(2, .ffnNorm).huggingFaceName == "model.layers.2.post_attention_layernorm.weight")
        #expect(TensorRole(ggufName: "blk.3.attn_q.weight")?.huggingFaceName == "model.layers.3.self_attn.q_proj.weight")
        #expect(TensorRole(huggingFaceName: "lm_head.weight")?.ggufName == "output.weight")
        #expect(TensorRole(ggufName: "blk.03.attn_q.weight") == nil)
        #expect(TensorRole(ggufName: "blk.x.attn_q.weight") == nil)
        #expect(TensorRole(huggingFaceName: "model.layers.1.mlp.experts.0.weight") == nil)
    }

    /// llama.cpp's converter: w.reshape(heads, 2, D/2, in).swapaxes(1, 2).reshape(w.shape).
    @Test func qkPermutationMatchesTheConverterFormulaAndInvertsExactly() {
        let heads = 3, headDim = 8, columns = 5
        let rows = heads * headDim
        let weight = Tensor(shape: [rows, columns], values: (0..<(rows * columns)).map(Float.init))
        let permuted = QKPermutation.toAdjacent(weight, heads: heads)
        for head in 0..<heads {
            for i in 0..<(headDim / 2) {
                for j in 0..<2 {
                    // After swapaxes the new index (head, i, j) reads the old (head, j, i).
                    let newRow = head * headDim + i * 2 + j
                    let oldRow = head * headDim + j * (headDim / 2) + i
                    #expect(Array(permuted.scalars[(newRow * columns)..<(newRow * columns + columns)])
                            == Array(weight.scalars[(oldRow * columns)..<(oldRow * columns + columns)]))
                }
            }
        }
        #expect(QKPermutation.toHalfSplit(permuted, heads: heads).scalars == weight.scalars)
        let bias = Tensor(shape: [rows], values: (0..<rows).map(Float.init))
        #expect(QKPermutation.toHalfSplit(QKPermutation.toAdjacent(bias, heads: heads), heads: heads).scalars == bias.scalars)
    }

    @Test func ggufMetadataGivesTheSameConfigAsConfigJSON() throws {
        let metadata: [String: GGUFValue] = [
            "general.architecture": .string("llama"), "llama.block_count": .uint32(30),
            "llama.context_length": .uint32(8192), "llama.embedding_length": .uint32(576),
            "llama.feed_forward_length": .uint32(1536), "llama.attention.head_count": .uint32(9),
            "llama.attention.head_count_kv": .uint32(3), "llama.rope.freq_base": .float32(100_000),
            "llama.attention.layer_norm_rms_epsilon": .float32(1e-5), "llama.vocab_size": .uint32(49152),
        ]
        var fromGGUF = try ModelConfig(ggufMetadata: metadata, tensorShapes: ["token_embd.weight": [49152, 576]], file: "m.gguf")
        #expect(fromGGUF.ropeLayout == .adjacent)
        fromGGUF.ropeLayout = .halfSplit
        var fromJSON = try config(Self.smolLM2)
        fromJSON.rmsNormEpsilon = Double(Float(1e-5))  // GGUF stores the epsilon as float32
        #expect(fromGGUF == fromJSON)

        var wrong = metadata
        wrong["general.architecture"] = .string("rwkv6")
        #expect(throws: ModelFormatError.unsupported(file: "m.gguf", field: "metadata key 'general.architecture'",
                                                     reason: "'rwkv6' is not an architecture losad runs (gemma2, gemma3, llama, qwen2, qwen3)")) {
            try ModelConfig(ggufMetadata: wrong, tensorShapes: [:], file: "m.gguf")
        }
        wrong = metadata
        wrong["llama.block_count"] = .string("thirty")
        #expect(throws: ModelFormatError.invalid(file: "m.gguf", field: "metadata key 'llama.block_count'", reason: "expected an integer, found string")) {
            try ModelConfig(ggufMetadata: wrong, tensorShapes: [:], file: "m.gguf")
        }
    }
}
