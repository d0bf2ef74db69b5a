/// What a job measured, per layer, per LoSA iteration and in the end
/// (io.losa.Manager.varlink). L layers; `iteration` counts from 1.

/// One layer in one LoSA iteration.
public struct LayerFigures: Codable, Sendable, Equatable {
    public var layer: Int
    /// Sparsity the allocation gave this layer.
    public var sparsity: Double
    /// Adapter rank the allocation gave this layer.
    public var rank: Int
    /// Importance from representation mutual information.
    public var importance: Double?
    /// Reconstruction error of the pruned layer against the dense one.
    public var reconstructionError: Double?

    public init(layer: Int, sparsity: Double, rank: Int, importance: Double? = nil, reconstructionError: Double? = nil) {
        self.layer = layer
        self.sparsity = sparsity
        self.rank = rank
        self.importance = importance
        self.reconstructionError = reconstructionError
    }
}

/// One LoSA iteration: its target sparsity and mean rank, training loss, and L layers.
public struct IterationFigures: Codable, Sendable, Equatable {
    public var iteration: Int
    /// Target sparsity of the iteration on the cubic schedule.
    public var sparsity: Double
    public var meanRank: Double
    /// Mean training loss over the iteration's steps.
    public var loss: Double?
    public var seconds: Double?
    public var layers: [LayerFigures]

    public init(iteration: Int, sparsity: Double, meanRank: Double, loss: Double? = nil, seconds: Double? = nil,
                layers: [LayerFigures] = []) {
        self.iteration = iteration
        self.sparsity = sparsity
        self.meanRank = meanRank
        self.loss = loss
        self.seconds = seconds
        self.layers = layers
    }
}

/// A job's results; nil until measured.
public struct JobFigures: Codable, Sendable, Equatable {
    /// Perplexity on the evaluation text: dense, pruned without recovery, and the exported result.
    public var densePerplexity: Double?
    public var prunedPerplexity: Double?
    public var perplexity: Double?
    /// Fraction of zeros counted in the exported weights.
    public var measuredSparsity: Double?
    public var parameterCount: Int?
    public var peakMemoryBytes: Int?
    public var outputBytes: Int?
    public var seconds: Double?
    /// Perplexity measured on the compact sparse file, read by losad's own kernels.
    public var sparsePerplexity: Double?
    public var sparseOutputBytes: Int?
    /// Decode tokens/s on the daemon's machine: the input model and the sparse file, both read in place.
    public var inputDecodeTokensPerSecond: Double?
    public var sparseDecodeTokensPerSecond: Double?

    public init(densePerplexity: Double? = nil, prunedPerplexity: Double? = nil, perplexity: Double? = nil,
                measuredSparsity: Double? = nil, parameterCount: Int? = nil, peakMemoryBytes: Int? = nil,
                outputBytes: Int? = nil, seconds: Double? = nil, sparsePerplexity: Double? = nil,
                sparseOutputBytes: Int? = nil, inputDecodeTokensPerSecond: Double? = nil,
                sparseDecodeTokensPerSecond: Double? = nil) {
        self.sparsePerplexity = sparsePerplexity
        self.sparseOutputBytes = sparseOutputBytes
        self.inputDecodeTokensPerSecond = inputDecodeTokensPerSecond
        self.sparseDecodeTokensPerSecond = sparseDecodeTokensPerSecond
        self.densePerplexity = densePerplexity
        self.prunedPerplexity = prunedPerplexity
        self.perplexity = perplexity
        self.measuredSparsity = measuredSparsity
        self.parameterCount = parameterCount
        self.peakMemoryBytes = peakMemoryBytes
        self.outputBytes = outputBytes
        self.seconds = seconds
    }
}
