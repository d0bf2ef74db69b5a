import Kernels
import ModelFormats

/// The parameters of one decoder block in the checkpoint's own row layout (q/k rows follow
/// `ModelConfig.ropeLayout`): norms and biases as Float32, the seven projections as `LinearWeight`s
/// (Float32 when loaded for training, or compressed and read in place for inference).
///
/// Shapes: attentionNorm, ffnNorm [C]; query [H·D, C]; key, value [Hkv·D, C];
/// attentionOutput [C, H·D]; queryBias [H·D], keyBias, valueBias [Hkv·D]
/// (qwen2 only); gate, up [F, C]; down [C, F].
public struct LayerWeights: Sendable {
    public let attentionNorm: Tensor
    public let query: LinearWeight
    public let key: LinearWeight
    public let value: LinearWeight
    public let attentionOutput: LinearWeight
    public let queryBias: Tensor?
    public let keyBias: Tensor?
    public let valueBias: Tensor?
    public let ffnNorm: Tensor
    public let gate: LinearWeight
    public let up: LinearWeight
    public let down: LinearWeight
    /// Per-head norms of q and k [D] (`BlockOptions.queryKeyNorm`).
    public let queryNorm: Tensor?
    public let keyNorm: Tensor?
    /// Norms of the attention's and the MLP's outputs [C] (`BlockOptions.postSublayerNorms`).
    public let attentionPostNorm: Tensor?
    public let ffnPostNorm: Tensor?

    /// The weight of projection `p`.
    public func projection(_ p: SparseLoRA.Projection) -> LinearWeight {
        switch p {
        case .query: return query
        case .key: return key
        case .value: return value
        case .attentionOutput: return attentionOutput
        case .gate: return gate
        case .up: return up
        case .down: return down
        }
    }
}

/// Every parameter of a LLaMA-family decoder, checked against its configuration.
///
/// Shapes: tokenEmbedding [V, C]; outputNorm [C]; output [V, C] (the embedding
/// itself when the head is tied); ropeInverseFrequencies [D/2].
public struct DecoderWeights: Sendable {
    public let config: ModelConfig
    /// Rows are looked up (`LinearWeight.copyRow`), never multiplied.
    public let tokenEmbedding: LinearWeight
    public let layers: [LayerWeights]
    public let outputNorm: Tensor
    /// The LM head; shares the embedding's storage when the checkpoint ties them.
    public let output: LinearWeight
    /// Rotary inverse frequencies: the config's (incl. llama3 scaling), or
    /// theta^(−2i/D) divided by a GGUF's `rope_freqs` factors, as llama.cpp applies them.
    public let ropeInverseFrequencies: [Double]

    /// Loads and converts every tensor of `checkpoint`.
    public init(checkpoint: Checkpoint) throws {
        try self.init(config: checkpoint.config, tensors: checkpoint.loadWeights())
    }

    /// Assembles Float32 weights from tensors by role, failing on a missing tensor or a wrong shape.
    public init(config: ModelConfig, tensors: [TensorRole: Tensor]) throws {
        try self.init(config: config, tensors: tensors, matrices: [:])
    }

    /// Assembles the weights by role: `matrices` (compressed, read in place) first, `tensors`
    /// (Float32) for every other role; fails on a missing tensor or a wrong shape.
    public init(config: ModelConfig, tensors: [TensorRole: Tensor], matrices: [TensorRole: any CompressedMatrix]) throws {
        let expected = Checkpoint.expectedShapes(for: config)
        func tensor(_ role: TensorRole) throws -> Tensor {
            guard let tensor = tensors[role] else { throw TransformerError.missingTensor(role: "\(role)") }
            if let shape = expected[role], tensor.shape != shape {
                throw TransformerError.wrongShape(role: "\(role)", shape: tensor.shape, expected: shape)
            }
            return tensor
        }
        func linear(_ role: TensorRole) throws -> LinearWeight {
            guard let matrix = matrices[role] else { return .dense(try tensor(role)) }
            if let shape = expected[role], [matrix.rows, matrix.cols] != shape {
                throw TransformerError.wrongShape(role: "\(role)", shape: [matrix.rows, matrix.cols], expected: shape)
            }
            return .compressed(matrix)
        }
        self.config = config
        tokenEmbedding = try linear(.tokenEmbedding)
        outputNorm = try tensor(.outputNorm)
        output = config.tiedEmbeddings ? tokenEmbedding : try linear(.output)
        layers = try (0..<config.layerCount).map { i in
            func part(_ name: TensorRole.LayerTensor) throws -> Tensor { try tensor(.layer(i, name)) }
            func projection(_ name: TensorRole.LayerTensor) throws -> LinearWeight { try linear(.layer(i, name)) }
            func optional(_ name: TensorRole.LayerTensor, when present: Bool) throws -> Tensor? {
                present ? try part(name) : nil
            }
            let block = config.block
            return LayerWeights(
                attentionNorm: try part(.attentionNorm),
                query: try projection(.query), key: try projection(.key), value: try projection(.value),
                attentionOutput: try projection(.attentionOutput),
                queryBias: config.attentionBias ? try part(.queryBias) : nil,
                keyBias: config.attentionBias ? try part(.keyBias) : nil,
                valueBias: config.attentionBias ? try part(.valueBias) : nil,
                ffnNorm: try part(.ffnNorm),
                gate: try projection(.gate), up: try projection(.up), down: try projection(.down),
                queryNorm: try optional(.queryNorm, when: block.queryKeyNorm),
                keyNorm: try optional(.keyNorm, when: block.queryKeyNorm),
                attentionPostNorm: try optional(.attentionPostNorm, when: block.postSublayerNorms),
                ffnPostNorm: try optional(.ffnPostNorm, when: block.postSublayerNorms))
        }
        if let factors = tensors[.ropeFrequencies] {
            // llama.cpp (ggml_rope_ext freq_factors): angle = p · theta^(−2i/D) / factor_i.
            guard factors.count == config.headDim / 2 else {
                throw TransformerError.wrongShape(role: "\(TensorRole.ropeFrequencies)", shape: factors.shape,
                                                  expected: [config.headDim / 2])
            }
            let standard = RotaryTable.standardInverseFrequencies(headDimension: config.headDim, theta: config.ropeTheta)
            ropeInverseFrequencies = zip(standard, factors.scalars).map { $0 / Double($1) }
        } else {
            ropeInverseFrequencies = config.ropeInverseFrequencies
        }
    }

    /// The rotary pair layout the q/k rows of these weights were stored for.
    public var rotaryLayout: RotaryLayout {
        switch config.ropeLayout {
        case .adjacent: return .adjacent
        case .halfSplit: return .halfSplit
        }
    }
}
