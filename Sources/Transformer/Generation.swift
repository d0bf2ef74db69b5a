import Kernels
import ModelFormats

/// How `Decoder.generate` continues a prompt.
public struct GenerationOptions: Sendable, Equatable {
    /// New tokens at most.
    public var maxTokens: Int
    /// 0 for greedy decoding; otherwise the softmax temperature.
    public var temperature: Float
    /// Nucleus sampling threshold in (0, 1].
    public var topP: Float
    /// Seed of the sampling generator.
    public var seed: UInt64
    /// Generation stops after this token (usually the tokenizer's EOS), which is included in the result.
    public var stopTokenID: Int32?
    /// Prompt tokens per forward step (the KV cache's block capacity).
    public var promptBlock: Int

    public init(maxTokens: Int = 64, temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0,
                stopTokenID: Int32? = nil, promptBlock: Int = 64) {
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
        self.stopTokenID = stopTokenID
        self.promptBlock = promptBlock
    }
}

/// The tokens `Decoder.generate` produced and why it stopped.
public struct GenerationResult: Sendable, Equatable {
    public enum StopReason: String, Sendable, Equatable, Codable {
        /// The stop token (EOS) was generated.
        case stopToken
        /// `maxTokens` were generated.
        case maxTokens
    }
    /// The new tokens, without the prompt.
    public let tokens: [Int32]
    public let stopReason: StopReason
}

extension Decoder {
    /// Continues `prompt` [P] token by token with a KV cache of P + maxTokens positions,
    /// until the stop token or `options.maxTokens` new tokens.
    public func generate(prompt: [Int32], options: GenerationOptions = GenerationOptions()) -> GenerationResult {
        precondition(!prompt.isEmpty, "generate: the prompt has no tokens")
        precondition(options.maxTokens >= 0 && options.promptBlock >= 1,
                     "generate: \(options.maxTokens) new tokens, prompt blocks of \(options.promptBlock)")
        guard options.maxTokens > 0 else { return GenerationResult(tokens: [], stopReason: .maxTokens) }
        let cache = makeCache(capacity: prompt.count + options.maxTokens, blockCapacity: options.promptBlock)
        var sampler = TokenSampler(temperature: options.temperature, topP: options.topP, seed: options.seed)
        let logits = Tensor(zeros: [config.vocabSize])
        var generated: [Int32] = []
        generated.reserveCapacity(options.maxTokens)

        decodeLast(prompt, cache: cache, into: logits)
        while true {
            let token = sampler.sample(logits)
            generated.append(token)
            if token == options.stopTokenID { return GenerationResult(tokens: generated, stopReason: .stopToken) }
            if generated.count == options.maxTokens { return GenerationResult(tokens: generated, stopReason: .maxTokens) }
            decodeLast([token], cache: cache, into: logits)
        }
    }
}
