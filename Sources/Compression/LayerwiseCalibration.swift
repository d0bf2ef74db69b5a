import Foundation
import Kernels
import ModelFormats
import Transformer

/// The calibration set pushed through the decoder one block at a time (LOSA.md steps 3 and 4, and the
/// dense features before the loop). The hidden states of every calibration window live in one buffer
/// [n·T, C] that each block transforms in place, chunk by chunk, so that a block can be fed whatever the
/// block before produced — the dense, the merged or the freshly pruned output (sequential calibration).
///
/// Shapes: n calibration windows of T tokens; hidden [n·T, C]; dense features per layer [n·T, C] as
/// Float16 of each value over its channel's norm (reconstruction errors are relative to those norms, so half
/// precision is ample, and normalised values are at most 1 whatever the model's activation range);
/// Gram matrices [n, n].
public final class LayerwiseCalibration {
    public let decoder: Decoder
    public let windows: [[Int32]]
    public let tokens: Int
    /// Windows per block run.
    public let chunk: Int
    let workspace: LoRATrainingWorkspace
    /// The hidden states of every window, [n·T, C].
    let hidden: Tensor
    /// One chunk's copy of the block input, [chunk·T, C].
    let scratch: Tensor

    /// `expansion`: layer buffers shared with another user of the same weights (`LoRATrainingWorkspace.init`).
    public init(decoder: Decoder, windows: [[Int32]], chunk: Int = 4, expansion: FrozenLayerExpansion? = nil) {
        precondition(!windows.isEmpty && windows.allSatisfy { $0.count == windows[0].count },
                     "calibration: \(windows.count) windows of unequal or zero length")
        self.decoder = decoder
        self.windows = windows
        tokens = windows[0].count
        self.chunk = min(chunk, windows.count)
        // One set of block intermediates: a block is run, its projection inputs read, then it runs again.
        workspace = LoRATrainingWorkspace(weights: decoder.weights, batch: self.chunk, tokens: tokens, chunkRows: 1,
                                          policy: .recompute, boundaries: 1, expansion: expansion)
        hidden = Tensor(zeros: [windows.count * tokens, decoder.config.hiddenSize])
        scratch = Tensor(zeros: [self.chunk * tokens, decoder.config.hiddenSize])
    }

    /// The floats this object holds besides the model (for memory estimates).
    public static func floatCount(config: ModelConfig, windows: Int, tokens: Int, chunk: Int) -> Int {
        let c = min(chunk, windows)
        let workspace = LoRATrainingWorkspace.shapes(config: config, batch: c, tokens: tokens, chunkRows: 1, policy: .recompute,
                                                     boundaries: 1)
            .map { $0.1.reduce(1, *) }.reduce(0, +)
        return workspace + (windows + c) * tokens * config.hiddenSize
    }

    var rowsPerChunk: Int { chunk * tokens }

    /// The windows' row ranges of `hidden`, chunk by chunk: (first window, window count).
    var chunks: [(first: Int, count: Int)] {
        stride(from: 0, to: windows.count, by: chunk).map { ($0, min(chunk, windows.count - $0)) }
    }

    func rows(_ first: Int, _ count: Int) -> Tensor {
        hidden.slice((first * tokens)..<((first + count) * tokens))
    }

    /// hidden ← embed(windows).
    func embedAll() {
        for (first, count) in chunks {
            decoder.embed(windows: Array(windows[first..<(first + count)]), into: rows(first, count), workspace: workspace)
        }
    }

    /// hidden ← block l(hidden), chunk by chunk.
    func runBlock(_ l: Int, cancellation: Cancellation) throws(CompressionError) {
        for (first, count) in chunks {
            try cancellation.check()
            decoder.runLayer(l, residual: rows(first, count), batch: count, workspace: workspace)
        }
    }

    // MARK: - Dense features

    /// Runs the (dense) decoder and keeps every block's output Y_l and its per-channel L2 norms over all
    /// calibration tokens: the targets of the reconstruction errors.
    public func denseFeatures(cancellation: Cancellation = .never) throws(CompressionError) -> DenseFeatures {
        try denseFeaturesAndGrams(cancellation: cancellation).features
    }

    /// `denseFeatures` and, from the same pass, `layerGrams` of the same model: a job that needs both of the dense
    /// model (LoSA's targets, and the layer similarities of its first allocations) runs the calibration set once.
    public func denseFeaturesAndGrams(cancellation: Cancellation = .never) throws(CompressionError)
        -> (features: DenseFeatures, grams: [GramMatrix]) {
        var features = DenseFeatures(hiddenSize: decoder.config.hiddenSize)
        var grams: [GramMatrix] = []
        embedAll()
        for l in 0..<decoder.config.layerCount {
            var gram = GramMatrix(sampleCount: windows.count)
            gram.accumulate(hidden)
            grams.append(gram)
            try runBlock(l, cancellation: cancellation)
            features.append(output: hidden)
        }
        return (features, grams)
    }

    // MARK: - RMI

    /// The Gram matrix K_l = X_l·X_lᵀ [n, n] of every block's input (one row per window: its T·C features),
    /// from the current weights.
    public func layerGrams(cancellation: Cancellation = .never) throws(CompressionError) -> [GramMatrix] {
        var grams: [GramMatrix] = []
        embedAll()
        for l in 0..<decoder.config.layerCount {
            var gram = GramMatrix(sampleCount: windows.count)
            gram.accumulate(hidden)
            grams.append(gram)
            try runBlock(l, cancellation: cancellation)
        }
        return grams
    }

    // MARK: - Projection input statistics

    /// The projections that read one input, in block order: q, k, v share one; gate and up share one.
    static let inputGroups: [[SparseLoRA.Projection]] = [[.query, .key, .value], [.attentionOutput], [.gate, .up], [.down]]

    /// Statistics of block l's four distinct projection inputs (`inputGroups`) over every calibration window, the
    /// block fed `hidden`. `advance`: the block's output replaces `hidden` (its weights will not change before the
    /// next block); otherwise it runs on a copy and `hidden` stays its input. `gather` false: empty statistics of
    /// the right widths, no pass (magnitude pruning needs none).
    func inputStatistics(layer l: Int, hessian: InputStatistics.HessianPrecision?, gather: Bool = true, advance: Bool,
                         cancellation: Cancellation) throws(CompressionError) -> [InputStatistics] {
        let config = decoder.config
        var statistics: [InputStatistics] = []
        do {
            for group in Self.inputGroups {
                statistics.append(try InputStatistics(inputs: SparseLoRA.shape(of: group[0], config: config).in, hessian: hessian))
            }
            guard gather else { return statistics }
            for (first, count) in chunks {
                try cancellation.check()
                let x: Tensor
                if advance {
                    x = rows(first, count)
                } else {
                    x = scratch.slice(0..<(count * tokens))
                    x.assign(rows(first, count))
                }
                decoder.runLayer(l, residual: x, batch: count, workspace: workspace)
                for (g, group) in Self.inputGroups.enumerated() {
                    try statistics[g].accumulate(workspace.projectionInput(group[0], layer: l, rows: count * tokens))
                }
            }
        } catch let error as CompressionError {
            throw error
        } catch {
            throw .pruning(layer: l, reason: "input statistics: \(error)")
        }
        return statistics
    }

    // MARK: - Sequential pruning

    /// What pruning did to one block.
    public struct LayerPruning: Sendable {
        /// The sparsity asked of the block's projections.
        public let target: Double
        /// Zeros counted in the block's seven projections / their size, after pruning.
        public let sparsity: Double
        /// e_l against the dense features (nil without them).
        public let reconstructionError: Double?
    }

    /// Prunes block by block in order (LOSA.md step 4): each block's projections are pruned with statistics of
    /// their inputs when the block is fed the pruned output of the block before, then the pruned block runs again
    /// to produce that output and its reconstruction error against `dense` (kept, or recomputed alongside).
    ///
    /// `sparsities[l]` is block l's target; the weights are modified in place. `reconstruction`: after Wanda or
    /// magnitude chose a projection's mask, its surviving weights are refitted by least squares to the outputs the
    /// projection had before pruning, on the same inputs (`reconstructPrunedWeight`; SparseGPT updates its own).
    public func prune(sparsities: [Double], method: PruningMethod, pattern: SparsityPattern, dense: DenseReference?,
                      reconstruction: WeightReconstructionOptions? = nil, cancellation: Cancellation = .never,
                      progress: (Int) -> Void = { _ in }) throws(CompressionError) -> [LayerPruning] {
        let config = decoder.config
        precondition(sparsities.count == config.layerCount, "calibration: \(sparsities.count) sparsities for \(config.layerCount) layers")
        var results: [LayerPruning] = []
        embedAll()
        if case .recomputed(let reference) = dense { reference.embedAll() }
        for l in 0..<config.layerCount {
            let refit = reconstruction != nil && method != .sparseGPT
            // SparseGPT's Cholesky factor wants the Hessian in Double; conjugate gradients in Float do not.
            let statistics = try inputStatistics(layer: l, hessian: method.needsHessian ? .float64 : refit ? .float32 : nil,
                                                 gather: method != .magnitude || refit, advance: false, cancellation: cancellation)
            var zeros = 0, total = 0
            // The Float32 weights themselves, or the expansion of compactly kept ones (the statistics pass just made it):
            // pruned there, and the mask (and refitted values) stored back.
            let layerWeights = workspace.layerWeights(l, of: decoder.weights)
            for (group, stats) in zip(Self.inputGroups, statistics) {
                for projection in group {
                    try cancellation.check()
                    let weight = SparseLoRA.weight(layerWeights, projection)
                    do {
                        let before = refit ? weight.copy() : nil
                        try method.prune(weight, statistics: method.needsStatistics ? stats : nil, sparsity: sparsities[l],
                                         pattern: pattern)
                        if let before, let reconstruction {
                            try reconstructPrunedWeight(weight, dense: before, statistics: stats, options: reconstruction)
                        }
                    } catch {
                        throw .pruning(layer: l, reason: "\(projection): \(error)")
                    }
                    if case .compressed(let compact as PrunedProjection) = decoder.weights.layers[l].projection(projection) {
                        compact.store(weight.pointer, ownValues: refit || method == .sparseGPT)
                    }
                    zeros += countZeros(weight)
                    total += weight.count
                }
            }
            // The expansion holds the pruned values already: the block runs on them as on Float32 weights.
            workspace.keepExpansion(layer: l, of: decoder.weights)
            try runBlock(l, cancellation: cancellation)
            let error: Double?
            switch dense {
            case nil: error = nil
            case .stored(let features): error = features.reconstructionError(layer: l, output: hidden)
            case .recomputed(let reference):
                // The dense block runs on the dense stream now, and its output is normalised and rounded exactly as
                // `denseFeatures` keeps it: the same error as from stored features.
                try reference.runBlock(l, cancellation: cancellation)
                var features = DenseFeatures(hiddenSize: config.hiddenSize)
                features.append(output: reference.hidden)
                error = features.reconstructionError(layer: 0, output: hidden)
            }
            // Said here, not at the report: JSON has no infinity, and the job would otherwise fail at its very end.
            if let error, !error.isFinite {
                throw .pruning(layer: l, reason: "the pruned block's output is not finite (reconstruction error \(error))")
            }
            results.append(LayerPruning(target: sparsities[l], sparsity: Double(zeros) / Double(total), reconstructionError: error))
            progress(l)
        }
        return results
    }
}

/// The dense outputs that reconstruction errors compare with: every block's, kept (`DenseFeatures`, L·n·T·C Float16
/// values), or recomputed block by block during each pruning pass by a calibration over the dense model (its
/// weights read in place from the input: one [n·T, C] stream and one block's workspace, one dense forward per pass).
public enum DenseReference {
    case stored(DenseFeatures)
    /// A calibration over the dense decoder, on the same windows and chunks.
    case recomputed(LayerwiseCalibration)
}

/// Every block's dense output Y_l [n·T, C], kept as Float16 of Y_l / ‖Y_l‖_col, and its per-channel norms
/// ‖Y_l‖_col [C]. Normalised, every stored value lies in [−1, 1]: Gemma's residual stream passes Float16's
/// 65504, which stored as is made its reconstruction errors infinite.
public struct DenseFeatures: Sendable {
    private(set) var outputs: [[UInt16]] = []
    private(set) var channelNorms: [[Double]] = []
    let hiddenSize: Int

    init(hiddenSize: Int) {
        self.hiddenSize = hiddenSize
    }

    /// Keeps the next block's dense output y [N, C].
    mutating func append(output y: Tensor) {
        let c = hiddenSize, rows = y.count / c
        let norms = columnNorms(y, columns: c)
        let inverse = norms.map { $0 > 0 ? Float(1 / $0) : 0 }
        var bits = [UInt16](repeating: 0, count: y.count)
        var scaled = [Float](repeating: 0, count: c)
        bits.withUnsafeMutableBufferPointer { out in
            for row in 0..<rows {
                for j in 0..<c { scaled[j] = y.pointer[row * c + j] * inverse[j] }
                scaled.withUnsafeBufferPointer { convertFloat32ToFloat16($0.baseAddress!, out.baseAddress! + row * c, count: c) }
            }
        }
        outputs.append(bits)
        channelNorms.append(norms)
    }

    /// e_l = Σ ((Y_l − Ŷ_l) / ‖Y_l‖_col)² / C over every calibration token and channel (LOSA.md step 4).
    public func reconstructionError(layer l: Int, output: Tensor) -> Double {
        precondition(output.count == outputs[l].count, "reconstruction error: \(output.shape) against \(outputs[l].count) values")
        let c = hiddenSize, norms = channelNorms[l], rows = output.count / c
        var dense = [Float](repeating: 0, count: c)
        var sum = 0.0
        outputs[l].withUnsafeBufferPointer { bits in
            for row in 0..<rows {
                dense.withUnsafeMutableBufferPointer { convertFloat16ToFloat32(bits.baseAddress! + row * c, $0.baseAddress!, count: c) }
                let y = output.pointer + row * c
                for j in 0..<c where norms[j] > 0 {
                    let d = Double(dense[j]) - Double(y[j]) / norms[j]
                    sum += d * d
                }
            }
        }
        return sum / Double(c)
    }

    /// Bytes held.
    public var byteCount: Int { outputs.reduce(0) { $0 + $1.count * 2 } }
}

/// The L2 norm of every column of x [N, columns] over its rows.
func columnNorms(_ x: Tensor, columns: Int) -> [Double] {
    var sums = [Double](repeating: 0, count: columns)
    let rows = x.count / columns
    for row in 0..<rows {
        let p = x.pointer + row * columns
        for j in 0..<columns { sums[j] += Double(p[j]) * Double(p[j]) }
    }
    return sums.map { $0.squareRoot() }
}

/// The number of entries exactly zero.
func countZeros(_ t: Tensor) -> Int {
    var zeros = 0
    for i in 0..<t.count where t.pointer[i] == 0 { zeros += 1 }
    return zeros
}
