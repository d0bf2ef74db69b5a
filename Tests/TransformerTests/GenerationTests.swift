import Foundation
import Kernels
import ModelFormats
import Testing
@testable import Transformer

@Suite struct GenerationTests {
    static func tinyLLaMA() throws -> Decoder {
        try Decoder(checkpoint: Checkpoint.open(try TransformerFixtures.modelPath("tiny-llama")))
    }

    static let stream: [Int32] = (0..<21).map { Int32(($0 * 53 + 7) % 288) }

    // MARK: - KV cache

    @Test func incrementalDecodingGivesTheFullSequenceLogitsAtEveryPosition() throws {
        let decoder = try Self.tinyLLaMA()
        let tokens = Self.stream
        let full = decoder.logits(tokens: [tokens])[0]
        // A prompt block of 6 (split in blocks of 4 by the cache), then one token at a time.
        let cache = decoder.makeCache(capacity: tokens.count + 3, blockCapacity: 4)
        let incremental = Tensor(zeros: full.shape)
        incremental.slice(0..<6).assign(decoder.decode(Array(tokens[0..<6]), cache: cache))
        for t in 6..<tokens.count {
            incremental.slice(t..<(t + 1)).assign(decoder.decode([tokens[t]], cache: cache))
        }
        #expect(cache.count == tokens.count)
        let error = maximumRelativeError(incremental, full)
        print("tiny-llama: max relative logits error, incremental vs full sequence \(error)")
        #expect(error <= 1e-5)

        // decodeLast gives the last row of the same logits.
        cache.reset()
        let last = Tensor(zeros: [decoder.config.vocabSize])
        decoder.decodeLast(tokens, cache: cache, into: last)
        #expect(maximumRelativeError(last, full[tokens.count - 1]) <= 1e-5)
    }

    /// The cache holds every position; sliding layers mask the old ones (mistral, gemma: windows of 4
    /// over 14 tokens), q/k norms and per-layer rope (gemma3) apply to the cached rows as to the full pass.
    @Test(arguments: ["tiny-llama3", "tiny-mistral", "tiny-qwen3", "tiny-gemma2", "tiny-gemma3", "tiny-phi3"])
    func incrementalDecodingOfEveryFamilyEqualsTheFullForward(name: String) throws {
        let decoder = try Decoder(checkpoint: Checkpoint.open(try TransformerFixtures.modelPath(name)))
        let tokens = Array(Self.stream.prefix(14))
        let full = decoder.logits(tokens: [tokens])[0]
        let cache = decoder.makeCache(capacity: tokens.count, blockCapacity: 3)
        let incremental = Tensor(zeros: full.shape)
        incremental.slice(0..<5).assign(decoder.decode(Array(tokens[0..<5]), cache: cache))
        for t in 5..<tokens.count {
            incremental.slice(t..<(t + 1)).assign(decoder.decode([tokens[t]], cache: cache))
        }
        let error = maximumRelativeError(incremental, full)
        print("\(name): max relative logits error, incremental vs full sequence \(error)")
        #expect(error <= 1e-5)
    }

    @Test func theQwen2BiasesAreAppliedOnTheCachedPathToo() throws {
        let decoder = try Decoder(checkpoint: Checkpoint.open(try TransformerFixtures.modelPath("tiny-qwen2")))
        let tokens = Array(Self.stream.prefix(9))
        let full = decoder.logits(tokens: [tokens])[0]
        let cache = decoder.makeCache(capacity: tokens.count)
        let incremental = Tensor(zeros: full.shape)
        incremental.slice(0..<3).assign(decoder.decode(Array(tokens[0..<3]), cache: cache))
        for t in 3..<tokens.count { incremental.slice(t..<(t + 1)).assign(decoder.decode([tokens[t]], cache: cache)) }
        #expect(maximumRelativeError(incremental, full) <= 1e-5)
    }

    // MARK: - Generation and sampling

    @Test func greedyGenerationIsDeterministicAndFollowsTheFullSequenceArgmax() throws {
        let decoder = try Self.tinyLLaMA()
        let prompt = Array(Self.stream.prefix(5))
        let first = decoder.generate(prompt: prompt, options: GenerationOptions(maxTokens: 12))
        let second = decoder.generate(prompt: prompt, options: GenerationOptions(maxTokens: 12))
        #expect(first == second && first.tokens.count == 12 && first.stopReason == .maxTokens)

        // Each generated token is the argmax of the full forward pass over everything before it.
        let all = prompt + first.tokens
        let logits = decoder.logits(tokens: [Array(all.dropLast())])[0]
        for (i, token) in first.tokens.enumerated() {
            #expect(logits[prompt.count - 1 + i].withUnsafeBufferPointer(TokenSampler.argmax) == token)
        }
    }

    @Test func generationStopsAfterTheStopToken() throws {
        let decoder = try Self.tinyLLaMA()
        let prompt = Array(Self.stream.prefix(5))
        let free = decoder.generate(prompt: prompt, options: GenerationOptions(maxTokens: 8))
        let stop = free.tokens[3]
        let stopped = decoder.generate(prompt: prompt, options: GenerationOptions(maxTokens: 8, stopTokenID: stop))
        let firstStop = free.tokens.firstIndex(of: stop)!
        #expect(stopped.tokens == Array(free.tokens[...firstStop]) && stopped.stopReason == .stopToken)
    }

    @Test func theSameSeedGivesTheSameSampleAndATinyTopPIsGreedy() throws {
        let decoder = try Self.tinyLLaMA()
        let prompt = Array(Self.stream.prefix(5))
        let sampled = { (seed: UInt64, topP: Float) in
            decoder.generate(prompt: prompt, options: GenerationOptions(maxTokens: 16, temperature: 1.5, topP: topP, seed: seed))
        }
        let a = sampled(7, 0.95), b = sampled(7, 0.95), c = sampled(8, 0.95)
        #expect(a == b)
        #expect(a.tokens != c.tokens, "two seeds drew the same 16 tokens")
        let greedy = decoder.generate(prompt: prompt, options: GenerationOptions(maxTokens: 16))
        #expect(sampled(7, 1e-6).tokens == greedy.tokens)
        #expect(a.tokens != greedy.tokens, "temperature 1.5 sampling reproduced greedy decoding")
    }

    @Test func samplingFollowsTheTemperatureSoftmax() {
        // Two logits 0 and log 3 at temperature 1: probabilities 1/4 and 3/4.
        var sampler = TokenSampler(temperature: 1, topP: 1, seed: 42)
        let logits: [Float] = [0, Float(log(3.0))]
        let draws = 20_000
        let ones = (0..<draws).count { _ in logits.withUnsafeBufferPointer { sampler.sample($0) } == 1 }
        #expect(abs(Double(ones) / Double(draws) - 0.75) < 0.015)
        // top-p 0.7 keeps only the 3/4 token.
        var nucleus = TokenSampler(temperature: 1, topP: 0.7, seed: 42)
        #expect((0..<100).allSatisfy { _ in logits.withUnsafeBufferPointer { nucleus.sample($0) } == 1 })
    }

    // MARK: - Demo model

    @Test(.enabled(if: TransformerFixtures.demoModelExists, "set LOSAD_DEMO_MODEL or run scripts/fetch-demo-model.sh"))
    func theDemoModelSaysParisIsTheCapitalOfFrance() throws {
        let checkpoint = try Checkpoint.open(TransformerFixtures.demoModelPath)
        let decoder = try Decoder(checkpoint: checkpoint)
        let tokenizer = checkpoint.tokenizer
        let prompt = tokenizer.prefixTokenIDs + tokenizer.encode("The capital of France is", addSpecialTokens: false)
        let result = decoder.generate(prompt: prompt, options: GenerationOptions(maxTokens: 4, stopTokenID: tokenizer.eosTokenID))
        let text = tokenizer.decode(result.tokens)
        print("demo model: \"The capital of France is\" → \"\(text)\"")
        #expect(text.hasPrefix(" Paris"), "\(text)")
    }
}
