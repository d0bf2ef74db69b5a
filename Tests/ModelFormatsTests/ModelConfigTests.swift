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
                                                     reason: "'bert' is not an architecture losad runs (gemma2, gemma3_text, llama, mistral, phi3, qwen2, qwen3)")) {
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

    /// Phi-3's fused tensors: one stored name for q/k/v and one for gate/up, in either format; in
    /// other families `ffn_up` is up alone and the fused names are no tensor of theirs.
    @Test func phi3FusedTensorNamesMapToTheirLayerAndRows() throws {
        #expect(TensorPlacement(ggufName: "blk.3.attn_qkv.weight", architecture: .phi3) == .fused(layer: 3, .queryKeyValue))
        #expect(TensorPlacement(ggufName: "blk.3.ffn_up.weight", architecture: .phi3) == .fused(layer: 3, .gateUp))
        #expect(TensorPlacement(ggufName: "blk.3.ffn_up.weight", architecture: .llama) == .role(.layer(3, .up)))
        #expect(TensorPlacement(ggufName: "blk.3.attn_qkv.weight", architecture: .llama) == nil)
        // llama.cpp's phi3 loader also takes separate q/k/v; they read as any family's.
        #expect(TensorPlacement(ggufName: "blk.3.attn_q.weight", architecture: .phi3) == .role(.layer(3, .query)))
        #expect(TensorPlacement(huggingFaceName: "model.layers.12.self_attn.qkv_proj.weight", architecture: .phi3)
                == .fused(layer: 12, .queryKeyValue))
        #expect(TensorPlacement(huggingFaceName: "model.layers.12.mlp.gate_up_proj.weight", architecture: .phi3) == .fused(layer: 12, .gateUp))
        #expect(TensorPlacement(huggingFaceName: "model.layers.12.mlp.gate_up_proj.weight", architecture: .qwen3) == nil)
        #expect(TensorPlacement(huggingFaceName: "model.layers.01.self_attn.qkv_proj.weight", architecture: .phi3) == nil)
        for layer in [0, 5] {
            for fused in FusedProjection.allCases {
                let placement = TensorPlacement.fused(layer: layer, fused)
                #expect(TensorPlacement(ggufName: placement.ggufName, architecture: .phi3) == placement)
                #expect(TensorPlacement(huggingFaceName: placement.huggingFaceName(in: .phi3)!, architecture: .phi3) == placement)
                for member in fused.members {
                    #expect(TensorPlacement.storing(.layer(layer, member), in: .phi3) == placement)
                    #expect(TensorPlacement.storing(.layer(layer, member), in: .llama) == .role(.layer(layer, member)))
                }
            }
        }
        // Phi-3-mini's shapes: 32 heads of 96 (no GQA), F 8192.
        let c = try config(Self.phi3Mini)
        #expect(FusedProjection.queryKeyValue.rowRanges(in: c) == [0..<3072, 3072..<6144, 6144..<9216])
        #expect(FusedProjection.gateUp.rowRanges(in: c) == [0..<8192, 8192..<16384])
        #expect(FusedProjection.gateUp.shape(in: c) == [16384, 3072])
    }

    /// Shaped as Phi-3-mini-4k-instruct's config.json (its sizes, window and rope keys).
    static let phi3Mini = """
    {"architectures": ["Phi3ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "embd_pdrop": 0.0,
     "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 3072, "initializer_range": 0.02,
     "intermediate_size": 8192, "max_position_embeddings": 4096, "model_type": "phi3", "num_attention_heads": 32,
     "num_hidden_layers": 32, "num_key_value_heads": 32, "original_max_position_embeddings": 4096,
     "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0,
     "sliding_window": 2047, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 32064}
    """

    /// transformers 5.24 masks every Phi-3 layer to `sliding_window` keys (create_sliding_window_causal_mask
    /// when the config has one); the 128k models' longrope and Phi-4-mini's partial rotary are refused by key.
    @Test func phi3SlidesEveryLayerAndRefusesLongropeAndPartialRotary() throws {
        let c = try config(Self.phi3Mini)
        #expect(c.architecture == .phi3 && c.headDim == 96 && c.ropeLayout == .halfSplit && !c.attentionBias)
        #expect(c.block.slidingWindow == 2047 && c.block.layerSpans == Array(repeating: .sliding, count: 32))
        let full = try config(Self.phi3Mini.replacingOccurrences(of: "\"sliding_window\": 2047", with: "\"sliding_window\": null"))
        #expect(full.block.slidingWindow == nil && full.block.layerSpans.isEmpty)
        for kind in ["longrope", "su"] {
            #expect(throws: ModelFormatError.unsupported(file: "config.json", field: "key 'rope_scaling.rope_type'",
                                                         reason: "'\(kind)' (losad runs unscaled, linear and llama3-style rope)")) {
                try config(Self.phi3Mini.replacingOccurrences(
                    of: "\"rope_scaling\": null",
                    with: "\"rope_scaling\": {\"type\": \"\(kind)\", \"long_factor\": [1.0], \"short_factor\": [1.0]}"))
            }
        }
        #expect(throws: ModelFormatError.unsupported(file: "config.json", field: "key 'rope_parameters.rope_type'",
                                                     reason: "'longrope' (losad runs unscaled, linear and llama3-style rope)")) {
            try config(Self.phi3Mini.replacingOccurrences(
                of: "\"rope_scaling\": null", with: "\"rope_parameters\": {\"rope_theta\": 10000.0, \"rope_type\": \"longrope\"}"))
        }
        #expect(throws: ModelFormatError.unsupported(file: "config.json", field: "key 'rope_parameters.partial_rotary_factor'",
                                                     reason: "0.75: partial rotary embedding; losad rotates whole heads")) {
            try config(Self.phi3Mini.replacingOccurrences(
                of: "\"rope_scaling\": null",
                with: "\"rope_parameters\": {\"rope_theta\": 10000.0, \"rope_type\": \"default\", \"partial_rotary_factor\": 0.75}"))
        }
        #expect(throws: ModelFormatError.unsupported(file: "config.json", field: "key 'partial_rotary_factor'",
                                                     reason: "0.75: partial rotary embedding; losad rotates whole heads")) {
            try config(Self.phi3Mini.replacingOccurrences(of: "\"rope_scaling\": null", with: "\"partial_rotary_factor\": 0.75"))
        }
        #expect(try config(Self.phi3Mini.replacingOccurrences(of: "\"rope_scaling\": null", with: "\"partial_rotary_factor\": 1.0"))
                == c)
    }

    /// llama.cpp's converter writes Phi-3-mini-4k so (its window included, which llama.cpp then ignores:
    /// "Phi SWA is currently disabled"); the 128k models add rope.scaling.attn_factor and rope_factors_long/short.
    @Test func phi3GGUFReadsFullAttentionAndRefusesLongropeAndPartialRotary() throws {
        let metadata: [String: GGUFValue] = [
            "general.architecture": .string("phi3"), "phi3.context_length": .uint32(4096),
            "phi3.rope.scaling.original_context_length": .uint32(4096), "phi3.embedding_length": .uint32(3072),
            "phi3.feed_forward_length": .uint32(8192), "phi3.block_count": .uint32(32),
            "phi3.attention.head_count": .uint32(32), "phi3.attention.head_count_kv": .uint32(32),
            "phi3.attention.layer_norm_rms_epsilon": .float32(1e-5), "phi3.rope.dimension_count": .uint32(96),
            "phi3.rope.freq_base": .float32(10_000), "phi3.attention.sliding_window": .uint32(2047),
        ]
        let shapes = ["token_embd.weight": [32064, 3072], "output.weight": [32064, 3072]]
        let fromGGUF = try ModelConfig(ggufMetadata: metadata, tensorShapes: shapes, file: "m.gguf")
        #expect(fromGGUF.ropeLayout == .halfSplit && fromGGUF.block.slidingWindow == nil && fromGGUF.block.layerSpans.isEmpty)
        var fromJSON = try config(Self.phi3Mini)
        fromJSON.rmsNormEpsilon = Double(Float(1e-5))
        fromJSON.block = ModelConfig.BlockOptions()
        #expect(fromGGUF == fromJSON)

        var long = metadata
        long["phi3.rope.scaling.attn_factor"] = .float32(1.1902381)
        #expect(throws: ModelFormatError.self) { try ModelConfig(ggufMetadata: long, tensorShapes: shapes, file: "m.gguf") }
        do {
            _ = try ModelConfig(ggufMetadata: long, tensorShapes: shapes, file: "m.gguf")
        } catch ModelFormatError.unsupported(_, let field, let reason) {
            #expect(field == "metadata key 'phi3.rope.scaling.attn_factor'" && reason.contains("longrope"))
        }
        var partial = metadata
        partial["phi3.rope.dimension_count"] = .uint32(72)
        #expect(throws: ModelFormatError.unsupported(file: "m.gguf", field: "metadata key 'phi3.rope.dimension_count'",
                                                     reason: "72 of the head's 96 dimensions rotate; losad rotates whole heads")) {
            try ModelConfig(ggufMetadata: partial, tensorShapes: shapes, file: "m.gguf")
        }
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
                                                     reason: "'rwkv6' is not an architecture losad runs (gemma2, gemma3, llama, phi3, qwen2, qwen3)")) {
            try ModelConfig(ggufMetadata: wrong, tensorShapes: [:], file: "m.gguf")
        }
        wrong = metadata
        wrong["llama.block_count"] = .string("thirty")
        #expect(throws: ModelFormatError.invalid(file: "m.gguf", field: "metadata key 'llama.block_count'", reason: "expected an integer, found string")) {
            try ModelConfig(ggufMetadata: wrong, tensorShapes: [:], file: "m.gguf")
        }
    }
}
