import Foundation
import Kernels
import ModelFormats
import Testing
@testable import Transformer

@Suite struct DecoderTests {
    // MARK: - Against transformers

    /// Measured max |ours − theirs| / max(|theirs|, 1): 1.1e-6 (tiny LLaMA), 3.5e-6 (tiny Qwen2, logits up to ±28).
    @Test(arguments: ["tiny-llama", "tiny-qwen2"])
    func logitsOfATinyModelEqualTransformers(name: String) throws {
        let checkpoint = try Checkpoint.open(try TransformerFixtures.modelPath(name))
        let expected = try TransformerFixtures.expected(name)
        let decoder = try Decoder(checkpoint: checkpoint)
        #expect(decoder.config.attentionBias == (name == "tiny-qwen2") && decoder.config.tiedEmbeddings == (name == "tiny-qwen2"))

        let logits = decoder.logits(tokens: expected.tokens)
        #expect(logits.shape == expected.logits.shape)
        let error = maximumRelativeError(logits, expected.logits)
        print("\(name): max relative logits error vs transformers (float64) \(error)")
        #expect(error < 1e-4)
    }

    /// Every family, from its Hugging Face folder and from llama.cpp's F32 GGUF of it, against
    /// transformers in float64 (the bar: relative error ≤ 1e-5). A GGUF drops what llama.cpp's
    /// converter does not carry (mistral's window; gemma's `query_pre_attn_scalar`), so it is held to
    /// the transformers logits of the model as the GGUF describes it (`logits_gguf`).
    @Test(.enabled(if: TransformerFixtures.familyGGUFDirectory != nil,
                   "set LOSAD_REFERENCE_DIR (scripts/prepare-test-references.sh makes the GGUF twins and prints it)"),
          arguments: ["tiny-llama3", "tiny-mistral", "tiny-qwen3", "tiny-gemma2", "tiny-gemma3", "tiny-phi3"])
    func logitsOfEveryFamilyEqualTransformersFromBothFormats(name: String) throws {
        let expected = try TransformerFixtures.expected(name)
        for format in ["safetensors", "gguf"] {
            let path = try format == "gguf" ? TransformerFixtures.familyGGUF(name) : TransformerFixtures.modelPath(name)
            let decoder = try Decoder(checkpoint: Checkpoint.open(path))
            let reference = format == "gguf" ? try TransformerFixtures.expectedGGUFLogits(name) ?? expected.logits : expected.logits
            let logits = decoder.logits(tokens: expected.tokens)
            #expect(logits.shape == reference.shape)
            let error = maximumRelativeError(logits, reference)
            print("\(name) (\(format)): max relative logits error vs transformers (float64) \(error)")
            #expect(error <= 1e-5, "\(name) from \(format)")
        }
    }

    /// transformers 5.24 masks every Phi-3 layer to `sliding_window` keys when config.json sets one
    /// (the fixture's variant: window 3 over 7 tokens, which moves transformers' logits by up to 2.7).
    /// Measured: 1.1e-6 from the folder, and the cached decoding of 14 tokens equals the full pass.
    @Test func phi3SlidesEveryLayerToItsWindowAsTransformersDoes() throws {
        let folder = try TransformerFixtures.modelCopy("tiny-phi3", configChanges: ["sliding_window": 3])
        defer { try? FileManager.default.removeItem(at: folder) }
        let decoder = try Decoder(checkpoint: Checkpoint.open(folder.path))
        #expect(decoder.config.block.slidingWindow == 3 && decoder.config.block.layerSpans == [.sliding, .sliding])
        let expected = try TransformerFixtures.expected("tiny-phi3")
        let reference = try TransformerFixtures.expectedLogits("tiny-phi3", key: "logits_sliding_window_3")
        let error = maximumRelativeError(decoder.logits(tokens: expected.tokens), reference)
        print("tiny-phi3 with sliding_window 3: max relative logits error vs transformers (float64) \(error)")
        #expect(error <= 1e-5)

        let tokens = expected.tokens[0] + expected.tokens[1]
        let full = decoder.logits(tokens: [tokens])[0]
        let cache = decoder.makeCache(capacity: tokens.count, blockCapacity: 3)
        let incremental = Tensor(zeros: full.shape)
        incremental.slice(0..<4).assign(decoder.decode(Array(tokens[0..<4]), cache: cache))
        for t in 4..<tokens.count { incremental.slice(t..<(t + 1)).assign(decoder.decode([tokens[t]], cache: cache)) }
        #expect(maximumRelativeError(incremental, full) <= 1e-5)
    }

    @Test func theGGUFTwinOfTheTinyLLaMAGivesTheSameLogitsAsItsSafetensorsFolder() throws {
        let folder = try Checkpoint.open(try TransformerFixtures.modelPath("tiny-llama"))
        let ggufPath = try writeGGUFTwin(of: folder)
        defer { try? FileManager.default.removeItem(atPath: ggufPath) }
        let gguf = try Checkpoint.open(ggufPath)
        #expect(gguf.config.ropeLayout == .adjacent && folder.config.ropeLayout == .halfSplit)

        let tokens = try TransformerFixtures.expected("tiny-llama").tokens
        let fromFolder = try Decoder(checkpoint: folder).logits(tokens: tokens)
        let fromGGUF = try Decoder(checkpoint: gguf).logits(tokens: tokens)
        let error = maximumRelativeError(fromGGUF, fromFolder)
        print("tiny-llama: max relative logits difference GGUF vs safetensors \(error)")
        #expect(error < 1e-5)
    }

    /// Writes `checkpoint` as llama.cpp's converter would: its names, q/k rows permuted to the adjacent layout.
    func writeGGUFTwin(of checkpoint: Checkpoint) throws -> String {
        let c = checkpoint.config
        var metadata = GGUFMetadata()
        metadata["general.architecture"] = .string("llama")
        metadata["llama.block_count"] = .uint32(UInt32(c.layerCount))
        metadata["llama.context_length"] = .uint32(UInt32(c.contextLength))
        metadata["llama.embedding_length"] = .uint32(UInt32(c.hiddenSize))
        metadata["llama.feed_forward_length"] = .uint32(UInt32(c.ffnSize))
        metadata["llama.attention.head_count"] = .uint32(UInt32(c.headCount))
        metadata["llama.attention.head_count_kv"] = .uint32(UInt32(c.kvHeadCount))
        metadata["llama.attention.key_length"] = .uint32(UInt32(c.headDim))
        metadata["llama.attention.value_length"] = .uint32(UInt32(c.headDim))
        metadata["llama.rope.freq_base"] = .float32(Float(c.ropeTheta))
        metadata["llama.attention.layer_norm_rms_epsilon"] = .float32(Float(c.rmsNormEpsilon))
        // The tokenizer as gguf-py writes a byte-level BPE one.
        let tokenizer = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: checkpoint.path).appendingPathComponent("tokenizer.json"))) as? [String: Any])
        let model = try #require(tokenizer["model"] as? [String: Any])
        let vocabulary = try #require(model["vocab"] as? [String: Int]).sorted { $0.value < $1.value }
        let special = Set(try #require(tokenizer["added_tokens"] as? [[String: Any]]).compactMap { $0["id"] as? Int })
        let merges = try #require(model["merges"] as? [Any]).map { merge in
            (merge as? [String])?.joined(separator: " ") ?? (merge as? String) ?? ""
        }
        metadata["tokenizer.ggml.model"] = .string("gpt2")
        metadata["tokenizer.ggml.tokens"] = .array(elementType: .string, vocabulary.map { .string($0.key) })
        metadata["tokenizer.ggml.token_type"] = .array(elementType: .int32, vocabulary.map { .int32(special.contains($0.value) ? 3 : 1) })
        metadata["tokenizer.ggml.merges"] = .array(elementType: .string, merges.map { .string($0) })
        metadata["tokenizer.ggml.bos_token_id"] = .uint32(0)
        metadata["tokenizer.ggml.eos_token_id"] = .uint32(0)

        var writer = GGUFWriter(metadata: metadata)
        for (role, tensor) in try checkpoint.loadWeights().sorted(by: { $0.key.ggufName < $1.key.ggufName }) {
            var stored = tensor
            if case .layer(_, .query) = role { stored = QKPermutation.toAdjacent(tensor, heads: c.headCount) }
            if case .layer(_, .key) = role { stored = QKPermutation.toAdjacent(tensor, heads: c.kvHeadCount) }
            writer.addTensor(named: role.ggufName, stored, as: .f32)
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("losad-tiny-llama-\(UUID().uuidString).gguf").path
        try writer.write(to: path)
        return path
    }

    // MARK: - Batching

    @Test func aBatchRowsLogitsDoNotDependOnTheOtherRow() throws {
        let decoder = try Decoder(checkpoint: Checkpoint.open(try TransformerFixtures.modelPath("tiny-qwen2")))
        let tokens = try TransformerFixtures.expected("tiny-qwen2").tokens
        let together = decoder.logits(tokens: tokens)
        let first = decoder.logits(tokens: [tokens[0]])
        let second = decoder.logits(tokens: [tokens[1]])
        let otherPartner = decoder.logits(tokens: [tokens[1].reversed(), tokens[0]])
        // Not bit for bit: sgemm blocks a 2-window product differently from a 1-window one, and the
        // summation order differs by kernel set (5e-6 measured with OpenBLAS's Zen kernels, 1e-6 with
        // Cooperlake's). A row mixing with its partner would show as an O(1) difference.
        #expect(maximumRelativeError(together[0], first[0]) < 2e-5)
        #expect(maximumRelativeError(together[1], second[0]) < 2e-5)
        #expect(maximumRelativeError(otherPartner[1], first[0]) < 2e-5)
    }

    @Test func aWorkspaceServesASmallerBatchAndIsReusedWithoutCarryOver() throws {
        let decoder = try Decoder(checkpoint: Checkpoint.open(try TransformerFixtures.modelPath("tiny-llama")))
        let tokens = try TransformerFixtures.expected("tiny-llama").tokens
        let workspace = decoder.makeWorkspace(batch: 2, tokens: 7)
        let logits = Tensor(zeros: [7, decoder.config.vocabSize])
        _ = decoder.forward(tokens, workspace: workspace)
        decoder.head(decoder.forward([tokens[1]], workspace: workspace), into: logits)
        #expect(maximumRelativeError(logits, decoder.logits(tokens: [tokens[1]])[0]) == 0)
    }

    // MARK: - The demo model

    @Test(.enabled(if: TransformerFixtures.demoModelExists,
                   "set LOSAD_DEMO_MODEL or run scripts/fetch-demo-model.sh"))
    func theDemoModelRunsAndContinuesASimplePromptSensibly() throws {
        let checkpoint = try Checkpoint.open(TransformerFixtures.demoModelPath)
        let decoder = try Decoder(checkpoint: checkpoint)
        let prompt = checkpoint.tokenizer.encode("The capital of France is", addSpecialTokens: false)
        let logits = decoder.logits(tokens: [prompt])
        let last = logits[0][prompt.count - 1].scalars
        #expect(last.allSatisfy { $0.isFinite })
        let next = Int32(last.indices.max { last[$0] < last[$1] }!)
        let word = checkpoint.tokenizer.decode([next])
        print("demo model: greedy continuation of 'The capital of France is' → \(word.debugDescription)")
        #expect(word.trimmingCharacters(in: .whitespaces) == "Paris")
    }
}
