import Foundation

/// The shape and hyper-parameters of a LLaMA-family decoder, from either GGUF
/// metadata or a Hugging Face `config.json`, so the engine sees one description.
///
/// The block's variations beyond LLaMA's (`BlockOptions`) are read per family from
/// `Sources/ModelFormats/Model/Families/`; anything else is refused by its architecture name
/// or by the key that asks for a feature losad does not run.
public struct ModelConfig: Sendable, Equatable, Codable {
    /// Architecture families losad can run.
    public enum Architecture: String, Sendable, Codable, CaseIterable {
        case llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3
    }

    /// The activation of the MLP's gate: silu(gate) ⊙ up (SwiGLU) or gelu_tanh(gate) ⊙ up (GeGLU).
    public enum GateActivation: String, Sendable, Codable {
        case silu
        case geluTanh = "gelu_tanh"
    }

    /// Which keys a layer's attention sees.
    public enum AttentionSpan: String, Sendable, Codable {
        /// Every earlier position.
        case full
        /// The last `slidingWindow` positions, the query's own included.
        case sliding
    }

    /// What a family's block adds to LLaMA's pre-norm block (the defaults are LLaMA's):
    ///
    ///     x = x · embeddingScale                                         (after the lookup)
    ///     h = rmsNorm(x);  q, k, v = proj(h);  q, k = qkNorm(q, k) per head;  rope(q, k)
    ///     s = softcap(q·kᵀ · attentionScale);  mask (causal, sliding on sliding layers)
    ///     a = proj_o(softmax(s)·v);  x = x + postAttentionNorm(a)
    ///     x = x + postFeedForwardNorm(down(act(gate(rmsNorm(x))) ⊙ up(rmsNorm(x))))
    ///     logits = softcap(rmsNorm(x)·outputᵀ, finalLogitSoftcap)
    public struct BlockOptions: Sendable, Equatable, Codable {
        public var gateActivation: GateActivation = .silu
        /// RMSNorm of each q and k head before rope (qwen3, gemma3): tensors attn_q_norm, attn_k_norm [D].
        public var queryKeyNorm = false
        /// Norms of each sublayer's output before its residual add (gemma2, gemma3).
        public var postSublayerNorms = false
        /// Multiplies q·kᵀ; nil means 1/√D.
        public var attentionScale: Double? = nil
        /// s ← cap · tanh(s / cap) on attention scores (gemma2).
        public var attentionSoftcap: Double? = nil
        /// logits ← cap · tanh(logits / cap) (gemma2).
        public var finalLogitSoftcap: Double? = nil
        /// Multiplies the looked-up embedding rows (gemma: √C).
        public var embeddingScale: Double? = nil
        /// Keys a sliding layer sees (its own position included); nil when no layer slides.
        public var slidingWindow: Int? = nil
        /// Per layer: full or sliding attention (empty: every layer full).
        public var layerSpans: [AttentionSpan] = []
        /// Rope base of the sliding layers when it differs from `ropeTheta` (gemma3's local layers).
        public var slidingRopeTheta: Double? = nil
        /// Linear rope scaling (positions divided by it) of the full-attention layers (gemma3 ≥ 4B).
        public var ropeLinearFactor: Double? = nil
        /// Hugging Face stores norm weights w of a norm that multiplies by (1 + w) (gemma); GGUF and
        /// the engine hold 1 + w, so loading adds 1 and exporting subtracts it.
        public var huggingFaceNormOffset = false

        public init() {}
    }

    /// How rotary embedding pairs the dimensions of a head; it follows the
    /// layout of the q/k rows in the checkpoint (see `QKPermutation`).
    public enum RopeLayout: String, Sendable, Codable {
        /// Pairs (2i, 2i+1): llama.cpp's layout for LLaMA weights it converted.
        case adjacent
        /// Pairs (i, i + D/2): Hugging Face's `rotate_half`, and GGUF qwen2.
        case halfSplit
    }

    /// Rotary frequency scaling as in Llama 3.1 (`rope_scaling.rope_type = "llama3"`).
    public struct Llama3RopeScaling: Sendable, Equatable, Codable {
        public var factor: Double
        public var lowFrequencyFactor: Double
        public var highFrequencyFactor: Double
        public var originalContextLength: Int
    }

    public var architecture: Architecture
    /// L
    public var layerCount: Int
    /// C
    public var hiddenSize: Int
    /// H
    public var headCount: Int
    /// Hkv
    public var kvHeadCount: Int
    /// D
    public var headDim: Int
    /// F
    public var ffnSize: Int
    /// V
    public var vocabSize: Int
    public var contextLength: Int
    public var ropeTheta: Double
    public var ropeScaling: Llama3RopeScaling?
    public var ropeLayout: RopeLayout
    public var rmsNormEpsilon: Double
    public var tiedEmbeddings: Bool
    /// q/k/v projections carry biases (qwen2).
    public var attentionBias: Bool
    /// The family's variations of the block.
    public var block = BlockOptions()

    public init(architecture: Architecture, layerCount: Int, hiddenSize: Int, headCount: Int,
                kvHeadCount: Int, headDim: Int, ffnSize: Int, vocabSize: Int, contextLength: Int,
                ropeTheta: Double, ropeScaling: Llama3RopeScaling?, ropeLayout: RopeLayout,
                rmsNormEpsilon: Double, tiedEmbeddings: Bool, attentionBias: Bool, block: BlockOptions = BlockOptions()) {
        self.architecture = architecture
        self.layerCount = layerCount
        self.hiddenSize = hiddenSize
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim
        self.ffnSize = ffnSize
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.ropeLayout = ropeLayout
        self.rmsNormEpsilon = rmsNormEpsilon
        self.tiedEmbeddings = tiedEmbeddings
        self.attentionBias = attentionBias
        self.block = block
    }

    /// Layer `l`'s attention span.
    public func span(ofLayer l: Int) -> AttentionSpan {
        block.layerSpans.isEmpty ? .full : block.layerSpans[l]
    }

    /// Checks the cross-field rules every source must satisfy; `field` names
    /// are the source's own keys so the error points into the user's file.
    func validated(file: String, keys: (String) -> String) throws -> ModelConfig {
        func positive(_ value: Int, _ name: String, limit: Int = 1 << 24) throws {
            guard value >= 1, value <= limit else {
                throw ModelFormatError.invalid(file: file, field: keys(name), reason: "\(value) is not in 1…\(limit)")
            }
        }
        try positive(layerCount, "layerCount", limit: 1024)
        try positive(hiddenSize, "hiddenSize")
        try positive(headCount, "headCount", limit: 4096)
        try positive(kvHeadCount, "kvHeadCount", limit: 4096)
        try positive(headDim, "headDim", limit: 4096)
        try positive(ffnSize, "ffnSize")
        try positive(vocabSize, "vocabSize", limit: 1 << 22)
        try positive(contextLength, "contextLength", limit: 1 << 24)
        guard headCount % kvHeadCount == 0 else {
            throw ModelFormatError.invalid(file: file, field: keys("kvHeadCount"),
                                           reason: "\(kvHeadCount) does not divide the \(headCount) attention heads")
        }
        guard headDim % 2 == 0 else {
            throw ModelFormatError.invalid(file: file, field: keys("headDim"), reason: "\(headDim) is odd; rotary embedding needs pairs")
        }
        guard ropeTheta > 0, ropeTheta.isFinite else {
            throw ModelFormatError.invalid(file: file, field: keys("ropeTheta"), reason: "\(ropeTheta) must be positive")
        }
        guard rmsNormEpsilon > 0, rmsNormEpsilon < 1 else {
            throw ModelFormatError.invalid(file: file, field: keys("rmsNormEpsilon"), reason: "\(rmsNormEpsilon) must be in (0, 1)")
        }
        if let scaling = ropeScaling {
            guard scaling.factor >= 1, scaling.lowFrequencyFactor > 0,
                  scaling.highFrequencyFactor > scaling.lowFrequencyFactor, scaling.originalContextLength >= 1 else {
                throw ModelFormatError.invalid(file: file, field: keys("ropeScaling"),
                                               reason: "llama3 scaling needs factor ≥ 1, 0 < low_freq_factor < high_freq_factor and a positive original context length")
            }
        }
        try validateBlock(file: file, keys: keys)
        return self
    }

    private func validateBlock(file: String, keys: (String) -> String) throws {
        let b = block
        func positive(_ value: Double?, _ name: String) throws {
            guard let value else { return }
            guard value > 0, value.isFinite else {
                throw ModelFormatError.invalid(file: file, field: keys(name), reason: "\(value) must be positive")
            }
        }
        try positive(b.attentionScale, "attentionScale")
        try positive(b.attentionSoftcap, "attentionSoftcap")
        try positive(b.finalLogitSoftcap, "finalLogitSoftcap")
        try positive(b.embeddingScale, "embeddingScale")
        try positive(b.slidingRopeTheta, "slidingRopeTheta")
        if let factor = b.ropeLinearFactor, !(factor >= 1 && factor.isFinite) {
            throw ModelFormatError.invalid(file: file, field: keys("ropeLinearFactor"), reason: "\(factor) must be ≥ 1")
        }
        if let window = b.slidingWindow, window < 1 {
            throw ModelFormatError.invalid(file: file, field: keys("slidingWindow"), reason: "\(window) is not a positive window")
        }
        if !b.layerSpans.isEmpty, b.layerSpans.count != layerCount {
            throw ModelFormatError.invalid(file: file, field: keys("layerSpans"),
                                           reason: "\(b.layerSpans.count) layer kinds for \(layerCount) layers")
        }
        if b.layerSpans.contains(.sliding), b.slidingWindow == nil {
            throw ModelFormatError.invalid(file: file, field: keys("slidingWindow"), reason: "missing, and some layers slide")
        }
    }

    /// Parameters of the decoder (embeddings, projections, norms, biases, head).
    public var parameterCount: Int {
        let attention = hiddenSize * headCount * headDim * 2 + hiddenSize * kvHeadCount * headDim * 2
        let bias = attentionBias ? headCount * headDim + 2 * kvHeadCount * headDim : 0
        let mlp = 3 * hiddenSize * ffnSize
        let norms = 2 * hiddenSize + (block.postSublayerNorms ? 2 * hiddenSize : 0) + (block.queryKeyNorm ? 2 * headDim : 0)
        let perLayer = attention + bias + mlp + norms
        let embeddings = vocabSize * hiddenSize * (tiedEmbeddings ? 1 : 2)
        return layerCount * perLayer + embeddings + hiddenSize
    }

    /// Inverse rotary frequencies of a layer with `span`: a sliding layer's with its own base when the
    /// family gives one (gemma3's local layers, unscaled), otherwise `ropeInverseFrequencies`.
    public func ropeInverseFrequencies(for span: AttentionSpan) -> [Double] {
        guard span == .sliding, let theta = block.slidingRopeTheta else { return ropeInverseFrequencies }
        return (0..<(headDim / 2)).map { 1.0 / pow(theta, Double(2 * $0) / Double(headDim)) }
    }

    /// Inverse rotary frequencies theta^(−2i/D), with llama3 or linear scaling applied when configured.
    public var ropeInverseFrequencies: [Double] {
        let half = headDim / 2
        var frequencies = (0..<half).map { 1.0 / pow(ropeTheta, Double(2 * $0) / Double(headDim)) }
        if let factor = block.ropeLinearFactor { frequencies = frequencies.map { $0 / factor } }
        if let s = ropeScaling {
            // Llama 3.1: long wavelengths slowed by `factor`, short ones kept, a smooth blend between.
            let lowWavelength = Double(s.originalContextLength) / s.lowFrequencyFactor
            let highWavelength = Double(s.originalContextLength) / s.highFrequencyFactor
            frequencies = frequencies.map { frequency in
                let wavelength = 2 * Double.pi / frequency
                if wavelength < highWavelength { return frequency }
                if wavelength > lowWavelength { return frequency / s.factor }
                let smooth = (Double(s.originalContextLength) / wavelength - s.lowFrequencyFactor)
                    / (s.highFrequencyFactor - s.lowFrequencyFactor)
                return (1 - smooth) * frequency / s.factor + smooth * frequency
            }
        }
        return frequencies
    }
}
