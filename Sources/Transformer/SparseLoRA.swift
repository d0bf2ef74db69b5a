import Kernels
import ModelFormats

/// Sparse LoRA adapters on all seven projections of every layer, as shared/docs/LOSA.md
/// ("Sparse LoRA") defines them (Hu et al. 2021, "LoRA", with the mask of LoSA):
///
///     ΔW = (B[:, :r_l] · A[:r_l, :]) ⊙ M · scaling,     M = (W ≠ 0)
///     y  = x·Wᵀ + dropout(x)·ΔWᵀ
///
/// Shapes: A [R, in]; B [out, R]; ΔW, W, M [out, in]; x [N, in]; y [N, out]; r_l ≤ R the
/// active rank of layer l, shared by its seven projections.
///
/// Why ΔW is formed explicitly (out × in, once per projection and pass) rather than as the
/// low-rank shortcut (x·A_rᵀ)·B_rᵀ: the mask sits in weight space, and (B·A) ⊙ M has no
/// rank-r factorisation, so x·((B·A) ⊙ M)ᵀ cannot be computed through the r-wide bottleneck.
/// For a 135M model the largest ΔW is 1536 × 576 floats, formed in a scratch buffer.
///
/// Memory: A and B of every projection are named views of one parameter arena; their
/// gradients are views of a second arena with the same layout (`SparseLoRA.layout`).
/// Gradients accumulate with `+=`; the caller zeroes them (`zeroGradients`).
public final class SparseLoRA {
    /// The seven adapted projections of a layer.
    public enum Projection: Int, CaseIterable, Sendable {
        case query, key, value, attentionOutput, gate, up, down
    }

    /// Hyperparameters of the adapters (LOSA.md: R = 16, scaling = alpha / 8 = 2, dropout 0.1).
    public struct Settings: Sendable, Equatable {
        public var maximumRank: Int
        public var scaling: Float
        public var dropout: Float
        /// Whether ΔW is masked by (W ≠ 0) (sparse LoRA). Off: plain dense LoRA, the baseline LoSA is compared
        /// with, whose merge then re-masks (only W's nonzero entries receive ΔW, so the sparsity stays exact).
        public var masked: Bool

        public init(maximumRank: Int = 16, scaling: Float = 2, dropout: Float = 0.1, masked: Bool = true) {
            precondition(maximumRank > 0, "sparse LoRA: maximum rank \(maximumRank) must be positive")
            precondition(dropout >= 0 && dropout < 1, "sparse LoRA: dropout \(dropout) must be in [0, 1)")
            self.maximumRank = maximumRank
            self.scaling = scaling
            self.dropout = dropout
            self.masked = masked
        }
    }

    public let config: ModelConfig
    public let settings: Settings
    /// Every A and B, one allocation.
    public let parameters: TensorStorage
    /// Every dA and dB, one allocation with the layout of `parameters`.
    public let gradients: TensorStorage
    /// Active rank per layer, each in 0...R; changeable between steps.
    public var ranks: [Int] {
        didSet {
            precondition(ranks.count == config.layerCount && ranks.allSatisfy { (0...settings.maximumRank).contains($0) },
                         "sparse LoRA: ranks \(ranks) for \(config.layerCount) layers of maximum rank \(settings.maximumRank)")
        }
    }
    /// Whether forward passes apply dropout to the adapter input (training mode).
    public var training = true
    /// The seed of this step's dropout masks; set a new one per step. Backward regenerates the same masks.
    public var dropoutSeed: UInt64 = 0
    /// The first token row of the current pass within its optimiser batch: a batch split into passes of fewer
    /// windows (to keep fewer activations) draws each row the dropout mask the whole batch would have given it.
    public var dropoutRowOffset = 0
    /// Whether ΔW currently sits inside the base weights (`merge`), when adapted forwards are refused.
    public private(set) var isMerged = false

    private let offsets: [Int]

    /// (out, in) of a projection.
    public static func shape(of projection: Projection, config c: ModelConfig) -> (out: Int, in: Int) {
        switch projection {
        case .query: return (c.headCount * c.headDim, c.hiddenSize)
        case .key, .value: return (c.kvHeadCount * c.headDim, c.hiddenSize)
        case .attentionOutput: return (c.hiddenSize, c.headCount * c.headDim)
        case .gate, .up: return (c.ffnSize, c.hiddenSize)
        case .down: return (c.hiddenSize, c.ffnSize)
        }
    }

    /// The arena layout: for layer l, projection p, A at offsets[2·(7l + p)], B at offsets[2·(7l + p) + 1];
    /// the last entry is the total float count. Every view starts on a 64-byte boundary.
    public static func layout(config: ModelConfig, maximumRank: Int) -> [Int] {
        var offsets = [0]
        for _ in 0..<config.layerCount {
            for projection in Projection.allCases {
                let (out, input) = shape(of: projection, config: config)
                for count in [maximumRank * input, out * maximumRank] {
                    offsets.append(offsets.last! + (count + 15) / 16 * 16)
                }
            }
        }
        return offsets
    }

    /// Adapters for `config` at full rank R: A Kaiming-uniform (a = √5, PyTorch's nn.Linear default, as peft does), B zero.
    public init(config: ModelConfig, settings: Settings = Settings(), seed: UInt64) {
        self.config = config
        self.settings = settings
        offsets = SparseLoRA.layout(config: config, maximumRank: settings.maximumRank)
        parameters = TensorStorage(count: offsets.last!)
        gradients = TensorStorage(count: offsets.last!)
        ranks = Array(repeating: settings.maximumRank, count: config.layerCount)
        var generator = RandomGenerator(seed: seed)
        for layer in 0..<config.layerCount {
            for projection in Projection.allCases {
                generator.fillKaimingUniform(a(layer, projection), a: Double(5).squareRoot())
            }
        }
    }

    private func view(_ storage: TensorStorage, _ layer: Int, _ projection: Projection, isB: Bool) -> Tensor {
        let (out, input) = SparseLoRA.shape(of: projection, config: config)
        let r = settings.maximumRank
        let index = 2 * (layer * Projection.allCases.count + projection.rawValue) + (isB ? 1 : 0)
        return Tensor(shape: isB ? [out, r] : [r, input], storage: storage, offset: offsets[index])
    }

    /// A [R, in] of a layer's projection.
    public func a(_ layer: Int, _ projection: Projection) -> Tensor { view(parameters, layer, projection, isB: false) }
    /// B [out, R] of a layer's projection.
    public func b(_ layer: Int, _ projection: Projection) -> Tensor { view(parameters, layer, projection, isB: true) }
    /// dL/dA [R, in] of a layer's projection (rows ≥ r stay untouched).
    public func gradientA(_ layer: Int, _ projection: Projection) -> Tensor { view(gradients, layer, projection, isB: false) }
    /// dL/dB [out, R] of a layer's projection (columns ≥ r stay untouched).
    public func gradientB(_ layer: Int, _ projection: Projection) -> Tensor { view(gradients, layer, projection, isB: true) }

    /// Sets every gradient to zero.
    public func zeroGradients() { gradients.base.update(repeating: 0, count: gradients.count) }

    /// Sets `mask` [parameters.count] to 1 at the arena elements the current ranks use — rows [:r_l] of A
    /// and columns [:r_l] of B of every projection of layer l — and to 0 everywhere else (inactive rank
    /// components, alignment padding): the update mask an optimizer takes to leave inactive components alone.
    public func fillUpdateMask(_ mask: inout [UInt8]) {
        if mask.count != parameters.count { mask = Array(repeating: 0, count: parameters.count) }
        mask.withUnsafeMutableBufferPointer { m in
            m.update(repeating: 0)
            let rMax = settings.maximumRank
            for layer in 0..<config.layerCount {
                let r = ranks[layer]
                for projection in Projection.allCases {
                    let (out, input) = SparseLoRA.shape(of: projection, config: config)
                    let index = 2 * (layer * Projection.allCases.count + projection.rawValue)
                    let aStart = offsets[index], bStart = offsets[index + 1]
                    for i in aStart..<(aStart + r * input) { m[i] = 1 }
                    for row in 0..<out {
                        for i in (bStart + row * rMax)..<(bStart + row * rMax + r) { m[i] = 1 }
                    }
                }
            }
        }
    }

    /// The Float32 weight of `projection` (training and pruning change weights loaded as Float32).
    public static func weight(_ weights: LayerWeights, _ projection: Projection) -> Tensor {
        switch projection {
        case .query: return weights.query.tensor
        case .key: return weights.key.tensor
        case .value: return weights.value.tensor
        case .attentionOutput: return weights.attentionOutput.tensor
        case .gate: return weights.gate.tensor
        case .up: return weights.up.tensor
        case .down: return weights.down.tensor
        }
    }

    // MARK: - ΔW

    /// delta = (B_r · A_r) ⊙ (W ≠ 0) · scaling, exactly zero where W is zero (unmasked: (B_r · A_r) · scaling).
    /// delta, W [out, in] (delta any shape of out·in values)
    public func delta(_ layer: Int, _ projection: Projection, weight: Tensor, into delta: Tensor) {
        let (out, input) = SparseLoRA.shape(of: projection, config: config)
        precondition(weight.count == out * input && delta.count >= out * input,
                     "sparse LoRA: weight \(weight.shape) or delta \(delta.shape) for \(projection) of \(out)×\(input)")
        let r = ranks[layer], rMax = settings.maximumRank
        sgemm(transposeA: false, transposeB: false, m: out, n: input, k: r, alpha: settings.scaling,
              a: b(layer, projection).pointer, lda: rMax, b: a(layer, projection).pointer, ldb: input,
              beta: 0, c: delta.pointer, ldc: input)
        guard settings.masked else { return }
        let w = weight.pointer, d = delta.pointer
        for i in 0..<(out * input) where w[i] == 0 { d[i] = 0 }
    }

    // MARK: - Merge

    /// W ← W + ΔW for every projection (the mask taken from W, so W keeps exactly its zeros); `scratch` ≥ the largest out·in.
    public func merge(into weights: DecoderWeights, scratch: Tensor) {
        precondition(!isMerged, "sparse LoRA: the adapters are already merged")
        apply(weights, scratch: scratch, sign: 1)
        isMerged = true
    }

    /// W ← W − ΔW for every projection, undoing `merge` within float rounding; zeros stay exactly zero.
    public func unmerge(from weights: DecoderWeights, scratch: Tensor) {
        precondition(isMerged, "sparse LoRA: the adapters are not merged")
        apply(weights, scratch: scratch, sign: -1)
        isMerged = false
    }

    /// The scratch floats `merge` and one adapted projection need: the largest out·in.
    public var largestDeltaCount: Int { SparseLoRA.largestProjectionCount(config: config) }

    /// The weights of the largest projection of a model with `config` (out·in): what one-projection scratches hold.
    public static func largestProjectionCount(config: ModelConfig) -> Int {
        Projection.allCases.map { shape(of: $0, config: config) }.map { $0.out * $0.in }.max()!
    }

    // The mask is read from the current W: after a merge W + ΔW is nonzero exactly where W was,
    // unless a sum cancels to zero exactly (a measure-zero event that would then stay pruned).
    // Only nonzero entries receive ΔW, which for unmasked (dense) LoRA is the merge-then-re-mask.
    // A compactly kept projection (`PrunedProjection`) takes the adapters themselves and adds ΔW whenever it is read.
    private func apply(_ weights: DecoderWeights, scratch: Tensor, sign: Float) {
        for (l, layer) in weights.layers.enumerated() {
            for projection in Projection.allCases {
                if case .compressed(let pruned as PrunedProjection) = layer.projection(projection) {
                    if sign > 0 { pruned.merge(self, layer: l, projection: projection) } else { pruned.unmerge() }
                    continue
                }
                let w = SparseLoRA.weight(layer, projection)
                delta(l, projection, weight: w, into: scratch)
                let p = w.pointer, d = scratch.pointer
                for i in 0..<w.count where p[i] != 0 { p[i] += sign * d[i] }
            }
        }
    }

    // MARK: - Dropout

    /// Whether dropout applies in the current mode.
    var dropoutActive: Bool { training && settings.dropout > 0 }

    /// The random stream of one projection's dropout masks (row generators derive from it and the step seed).
    func dropoutStream(_ layer: Int, _ projection: Projection) -> UInt64 {
        UInt64(layer * Projection.allCases.count + projection.rawValue + 1)
    }

    /// y = x ⊙ keep / (1 − p) over rows of `columns`, keep ~ Bernoulli(1 − p) drawn from one generator per
    /// (step seed, projection, row), so rows run in parallel and backward redraws the same mask; with
    /// `accumulate`, y += instead (backward uses it for dX).   x, y [count]
    func dropout(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int,
                 stream: UInt64, accumulate: Bool, columns: Int) {
        let p = settings.dropout, keepScale = 1 / (1 - settings.dropout), seed = dropoutSeed, rowOffset = dropoutRowOffset
        WorkerPool.shared.parallelFor(count / columns, minimumChunk: max(1, 4096 / columns)) { rows in
            for row in rows {
                var generator = RandomGenerator(seed: seed, stream: stream &* 0x1_0000_0000 &+ UInt64(rowOffset + row))
                let xRow = x + row * columns, yRow = y + row * columns
                for i in 0..<columns {
                    let kept: Float = generator.nextFloat() >= p ? xRow[i] * keepScale : 0
                    yRow[i] = accumulate ? yRow[i] + kept : kept
                }
            }
        }
    }
}

// MARK: - Adapted projection

/// One projection with its sparse-LoRA adapter, forward and backward.
///
/// Shapes: x, dX [N, in]; y, dY [N, out]; W, delta, dDelta [out, in]; xDrop ≥ [N, in].
enum AdaptedProjection {
    /// The first values of a scratch buffer viewed as `shape`.
    static func leading(_ scratch: Tensor, _ shape: [Int]) -> Tensor {
        let view = Tensor(shape: shape, storage: scratch.storage, offset: scratch.offset)
        precondition(view.count <= scratch.count, "sparse LoRA: scratch \(scratch.shape) is smaller than \(shape)")
        return view
    }

    /// y (+)= x·Wᵀ (+ bias) + dropout(x)·ΔWᵀ; `accumulate` adds into y (a residual) instead of
    /// overwriting it; without adapters, the plain projection.
    static func forward(_ x: Tensor, weight: Tensor, bias: Tensor?, into y: Tensor, accumulate: Bool,
                        adapters: SparseLoRA?, layer: Int, projection: SparseLoRA.Projection,
                        delta: Tensor, xDrop: Tensor) {
        // The projection with `w` as its weight, exactly as the inference forward computes it.
        func base(_ w: Tensor) {
            if accumulate {
                matmul(x, w, transposeB: true, into: y, beta: 1)
            } else {
                Attention.project(x, .dense(w), bias: bias, into: y, scratch: nil)
            }
        }
        guard let adapters else { return base(weight) }
        precondition(!adapters.isMerged, "sparse LoRA: an adapted forward with the adapters merged counts ΔW twice")
        let (out, input) = SparseLoRA.shape(of: projection, config: adapters.config)
        let d = leading(delta, [out, input])
        adapters.delta(layer, projection, weight: weight, into: d)
        guard adapters.dropoutActive else {
            // Both branches see x: one product with W + ΔW (bit for bit x·Wᵀ when ΔW = 0).
            addForward(d.pointer, weight.pointer, out: d.pointer, count: d.count)
            return base(d)
        }
        base(weight)
        let adapterInput = leading(xDrop, x.shape)
        adapters.dropout(x.pointer, into: adapterInput.pointer, count: x.count,
                         stream: adapters.dropoutStream(layer, projection), accumulate: false, columns: input)
        matmul(adapterInput, d, transposeB: true, into: y, beta: 1)
    }

    /// Backward of y = x·Wᵀ + x_d·ΔWᵀ (x_d = dropout(x)) with W frozen:
    ///
    ///     dX     += dY·W + dropout'(dY·ΔW)        (through the base and the adapter branch)
    ///     G       = dYᵀ·x_d                        (∂L/∂ΔW) [out, in]
    ///     dΔ      = (G ⊙ M)·s                      (∂L/∂(B_r·A_r), masked like the forward)
    ///     dB_r   += dΔ·A_rᵀ,   dA_r += B_rᵀ·dΔ
    ///
    /// `delta` and `dDelta` are scratch (≥ out·in); `xDrop` ≥ [N, in] scratch.
    static func backward(_ dY: Tensor, x: Tensor, weight: Tensor, dX: Tensor,
                         adapters: SparseLoRA?, layer: Int, projection: SparseLoRA.Projection,
                         delta: Tensor, dDelta: Tensor, xDrop: Tensor) {
        guard let adapters else {
            matmul(dY, weight, into: dX, beta: 1)
            return
        }
        let (out, input) = SparseLoRA.shape(of: projection, config: adapters.config)
        let n = x.rowCount, r = adapters.ranks[layer], rMax = adapters.settings.maximumRank
        let d = leading(delta, [out, input])
        let dD = leading(dDelta, [out, input])
        adapters.delta(layer, projection, weight: weight, into: d)
        var adapterInput = x
        if adapters.dropoutActive {
            // dX += dY·W, then dX += dropout'(dY·ΔW) with the forward's mask.
            matmul(dY, weight, into: dX, beta: 1)
            let branch = leading(xDrop, x.shape)
            matmul(dY, d, into: branch)
            adapters.dropout(branch.pointer, into: dX.pointer, count: x.count,
                             stream: adapters.dropoutStream(layer, projection), accumulate: true, columns: input)
            adapters.dropout(x.pointer, into: branch.pointer, count: x.count,
                             stream: adapters.dropoutStream(layer, projection), accumulate: false, columns: input)
            adapterInput = branch
        } else {
            // Without dropout both branches see x: dX += dY·(W + ΔW) in one product.
            addForward(d.pointer, weight.pointer, out: d.pointer, count: d.count)
            matmul(dY, d, into: dX, beta: 1)
        }
        guard r > 0 else { return }
        // G = dYᵀ·x_d, then dΔ = (G ⊙ M)·s in place.
        matmul(dY, adapterInput, transposeA: true, into: dD)
        precondition(dY.rowCount == n, "sparse LoRA backward: dY \(dY.shape) for x \(x.shape)")
        let w = weight.pointer, g = dD.pointer, s = adapters.settings.scaling
        if adapters.settings.masked {
            for i in 0..<(out * input) { g[i] = w[i] == 0 ? 0 : g[i] * s }
        } else {
            for i in 0..<(out * input) { g[i] *= s }
        }
        // dB_r += dΔ·A_rᵀ   [out, r] in rows of R
        sgemm(transposeA: false, transposeB: true, m: out, n: r, k: input,
              a: dD.pointer, lda: input, b: adapters.a(layer, projection).pointer, ldb: input,
              beta: 1, c: adapters.gradientB(layer, projection).pointer, ldc: rMax)
        // dA_r += B_rᵀ·dΔ   [r, in]
        sgemm(transposeA: true, transposeB: false, m: r, n: input, k: out,
              a: adapters.b(layer, projection).pointer, lda: rMax, b: dD.pointer, ldb: input,
              beta: 1, c: adapters.gradientA(layer, projection).pointer, ldc: input)
    }
}
