import Foundation

/// The shape and hyper-parameters of a LLaMA-family decoder, from either GGUF
/// metadata or a Hugging Face `config.json`, so the engine sees one description.
///
/// Supported: llama (incl. SmolLM), mistral without sliding window, qwen2
/// (q/k/v biases). Anything else is refused by its architecture name.
public struct ModelConfig: Sendable, Equatable, Codable {
    /// Architecture families losad can run.
    public enum Architecture: String, Sendable, Codable, CaseIterable {
        case llama, mistral, qwen2
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

    public init(architecture: Architecture, layerCount: Int, hiddenSize: Int, headCount: Int,
                kvHeadCount: Int, headDim: Int, ffnSize: Int, vocabSize: Int, contextLength: Int,
                ropeTheta: Double, ropeScaling: Llama3RopeScaling?, ropeLayout: RopeLayout,
                rmsNormEpsilon: Double, tiedEmbeddings: Bool, attentionBias: Bool) {
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
        return self
    }

    /// Parameters of the decoder (embeddings, projections, norms, biases, head).
    public var parameterCount: Int {
        let attention = hiddenSize * headCount * headDim * 2 + hiddenSize * kvHeadCount * headDim * 2
        let bias = attentionBias ? headCount * headDim + 2 * kvHeadCount * headDim : 0
        let mlp = 3 * hiddenSize * ffnSize
        let perLayer = attention + bias + mlp + 2 * hiddenSize
        let embeddings = vocabSize * hiddenSize * (tiedEmbeddings ? 1 : 2)
        return layerCount * perLayer + embeddings + hiddenSize
    }

    /// Inverse rotary frequencies theta^(−2i/D), with llama3 scaling applied when configured.
    public var ropeInverseFrequencies: [Double] {
        let half = headDim / 2
        var frequencies = (0..<half).map { 1.0 / pow(ropeTheta, Double(2 * $0) / Double(headDim)) }
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
