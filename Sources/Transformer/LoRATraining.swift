import Kernels
import ModelFormats

// Backward of the next-token cross-entropy through the decoder, to the sparse-LoRA adapters only
// (base weights frozen: no gradient buffers for them).
//
// Activation memory (`LoRATrainingWorkspace.ActivationPolicy`): forward keeps each layer's input
// x_l [N, C] (L + 1 of them) and, by default, every layer's intermediates (`.store`); with
// `.recompute` it keeps one layer's intermediates and backward reruns each layer's forward from its
// input first (gradient checkpointing at layer boundaries).
//
// Why `.store` is the default — measured on SmolLM2-135M (Float32, L = 30, C = 576, F = 1536),
// B = 4 × T = 256, rank 8, dropout 0.1, release, 2 cores (`make bench-engine`): the step is made of
// full-size GEMMs, and with dropout each projection costs 2 products in forward (x·Wᵀ and
// dropout(x)·ΔWᵀ cannot be fused) and 3 in backward (dX through W, dX through ΔW, G = dYᵀ·x_d).
// Recomputation adds the 2 forward products again: 7 instead of 5, and the recompute policy ran at
// 0.83× PyTorch's training step. Storing costs N·(3C + 2·H·D + 2·Hkv·D + 3F + 2) ≈ 7.9K floats per
// token per layer: 32 MB per layer at B·T = 1024, ≈ 0.97 GB for 30 layers — PyTorch keeps all of
// that and more (its RSS for the same step is 4.7–6 GB). `.recompute` stays available for
// machines where the memory matters more than a third of the step time.

/// The buffers of one training step over a [B, T] batch: layer inputs, the saved intermediates
/// (every layer's under `.store`, one layer's under `.recompute`), their gradients, and adapter scratch — named views of one allocation sized by
/// `LoRATrainingWorkspace.shapes(config:batch:tokens:chunkRows:)`.
///
/// Shapes (N = B·T, L' = L under `.store`, 1 under `.recompute`): layerInputs [L + 1, N, C];
/// normed1, normed2, xMid [L', N, C]; rrms1, rrms2 [L', N]; query, attention [L', N, H·D];
/// key, value [L', N, Hkv·D]; gate, up, hidden2 [L', N, F]; hidden, dHidden, dX, residual, dNormed [N, C];
/// dQuery, dAttention [N, H·D]; dKey, dValue [N, Hkv·D]; dHidden2, dGate, dUp [N, F];
/// probabilities, dProbabilities, dScores [H/Hkv, T, T]; delta, dDelta [max out·in];
/// xDrop [N, max(C, F, H·D)]; logits [chunkRows, V]; normScratch [C].
public final class LoRATrainingWorkspace {
    /// What forward keeps for backward (see the top of this file).
    public enum ActivationPolicy: String, Sendable, CaseIterable {
        /// Every layer's intermediates: backward runs no forward again.
        case store
        /// One layer's intermediates: backward reruns each layer's forward from its saved input.
        case recompute
    }

    /// The intermediates one layer's backward reads, saved per layer under `.store`.
    static let savedNames: Set<String> = ["normed1", "rrms1", "query", "key", "value", "attention", "xMid",
                                          "normed2", "rrms2", "gate", "up", "hidden2"]

    public let policy: ActivationPolicy
    public let batchCapacity: Int
    public let tokens: Int
    /// Rows of logits the loss materialises at once.
    public let chunkRows: Int
    /// Floats held by all the buffers together.
    public let floatCount: Int
    let layerInputs: Tensor
    let views: [String: Tensor]
    let positions: [Int32]
    let rotary: RotaryTable

    /// The named buffer shapes of a workspace: the one function that sizes it.
    public static func shapes(config c: ModelConfig, batch: Int, tokens t: Int, chunkRows: Int,
                              policy: ActivationPolicy = .store) -> [(String, [Int])] {
        let n = batch * t, hd = c.headCount * c.headDim, kvd = c.kvHeadCount * c.headDim
        let largestDelta = SparseLoRA.Projection.allCases.map { SparseLoRA.shape(of: $0, config: c) }
            .map { $0.out * $0.in }.max()!
        let group = c.headCount / c.kvHeadCount
        var shapes: [(String, [Int])] = [("layerInputs", [c.layerCount + 1, n, c.hiddenSize])]
        for name in ["hidden", "dHidden", "dX", "residual", "normed1", "normed2", "xMid", "dNormed"] {
            shapes.append((name, [n, c.hiddenSize]))
        }
        shapes += [("rrms1", [n]), ("rrms2", [n])]
        for name in ["query", "attention", "dQuery", "dAttention"] { shapes.append((name, [n, hd])) }
        for name in ["key", "value", "dKey", "dValue"] { shapes.append((name, [n, kvd])) }
        for name in ["gate", "up", "hidden2", "dHidden2", "dGate", "dUp"] { shapes.append((name, [n, c.ffnSize])) }
        for name in ["probabilities", "dProbabilities", "dScores"] { shapes.append((name, [group, t, t])) }
        shapes += [("delta", [largestDelta]), ("dDelta", [largestDelta]),
                   ("xDrop", [n, max(c.hiddenSize, c.ffnSize, hd)]),
                   ("logits", [min(chunkRows, n), c.vocabSize]), ("normScratch", [c.hiddenSize])]
        // Saved intermediates get a leading layer axis: L of them stored, or the one being differentiated.
        let copies = policy == .store ? c.layerCount : 1
        return shapes.map { savedNames.contains($0.0) ? ($0.0, [copies] + $0.1) : $0 }
    }

    /// Buffers for `batch` windows of `tokens` tokens of a decoder with `weights`.
    public init(weights: DecoderWeights, batch: Int, tokens: Int, chunkRows: Int = 128, policy: ActivationPolicy = .store) {
        precondition(batch > 0 && tokens > 0 && chunkRows > 0, "training workspace: batch \(batch) × \(tokens) tokens, chunks of \(chunkRows)")
        let shapes = LoRATrainingWorkspace.shapes(config: weights.config, batch: batch, tokens: tokens, chunkRows: chunkRows,
                                                  policy: policy)
        let offsets = shapes.reduce(into: [0]) { offsets, entry in
            offsets.append(offsets.last! + (entry.1.reduce(1, *) + 15) / 16 * 16)
        }
        let storage = TensorStorage(count: offsets.last!)
        var views: [String: Tensor] = [:]
        for (entry, offset) in zip(shapes, offsets) { views[entry.0] = Tensor(shape: entry.1, storage: storage, offset: offset) }
        self.views = views
        layerInputs = views["layerInputs"]!
        self.policy = policy
        batchCapacity = batch
        self.tokens = tokens
        self.chunkRows = chunkRows
        floatCount = offsets.last!
        positions = (0..<(batch * tokens)).map { Int32($0 % tokens) }
        rotary = RotaryTable(inverseFrequencies: weights.ropeInverseFrequencies, positionCount: tokens)
    }

    /// The first `rows` rows of a named buffer (all of it for buffers not in rows of N).
    func callAsFunction(_ name: String, rows: Int? = nil) -> Tensor {
        precondition(!Self.savedNames.contains(name), "training workspace: \(name) is saved per layer")
        let view = views[name]!
        guard let rows else { return view }
        return view.slice(0..<rows)
    }

    /// The first `rows` rows of layer l's saved intermediate `name` (the single copy under `.recompute`).
    func saved(_ name: String, layer l: Int, rows: Int) -> Tensor {
        views[name]![policy == .store ? l : 0].slice(0..<rows)
    }
}

// MARK: - Layer forward, saving what backward needs

/// One decoder block with adapters (see `DecoderLayer`), saving its intermediates into the workspace:
///
///     normed1 = rmsNorm(x);  q, k, v = proj(normed1), rope(q, k);  attention = attend(q, k, v)
///     xMid = x + proj_o(attention)
///     normed2 = rmsNorm(xMid);  gate, up = proj(normed2);  hidden2 = silu(gate) ⊙ up
///     x = xMid + proj_down(hidden2)
///
/// x [N, C] updated in place; the same operations in the same order as the inference forward, so
/// with ΔW = 0 the result is bit for bit that of `DecoderLayer.forward`.
enum AdaptedDecoderLayer {
    static func forward(_ weights: LayerWeights, index l: Int, config c: ModelConfig, layout: RotaryLayout,
                        residual x: Tensor, batch: Int, adapters: SparseLoRA?, workspace w: LoRATrainingWorkspace) {
        let n = batch * w.tokens, epsilon = Float(c.rmsNormEpsilon)
        let h = c.headCount, hkv = c.kvHeadCount, d = c.headDim, t = w.tokens
        func saved(_ name: String) -> Tensor { w.saved(name, layer: l, rows: n) }
        let normed1 = saved("normed1"), normed2 = saved("normed2")
        let query = saved("query"), key = saved("key"), value = saved("value")
        let attention = saved("attention"), xMid = saved("xMid")
        let gate = saved("gate"), up = saved("up"), hidden2 = saved("hidden2")
        let delta = w("delta"), xDrop = w("xDrop", rows: n)
        func project(_ input: Tensor, _ p: SparseLoRA.Projection, bias: Tensor?, into y: Tensor, accumulate: Bool = false) {
            AdaptedProjection.forward(input, weight: SparseLoRA.weight(weights, p), bias: bias, into: y, accumulate: accumulate,
                                      adapters: adapters, layer: l, projection: p, delta: delta, xDrop: xDrop)
        }

        rmsNorm(x, weight: weights.attentionNorm, epsilon: epsilon, into: normed1, reciprocalRMS: saved("rrms1"))
        project(normed1, .query, bias: weights.queryBias, into: query)
        project(normed1, .key, bias: weights.keyBias, into: key)
        project(normed1, .value, bias: weights.valueBias, into: value)
        w.positions.withUnsafeBufferPointer { positions in
            rotaryEmbeddingForward(query.pointer, tokens: n, heads: h, headDimension: d,
                                   positions: positions.baseAddress!, table: w.rotary, layout: layout)
            rotaryEmbeddingForward(key.pointer, tokens: n, heads: hkv, headDimension: d,
                                   positions: positions.baseAddress!, table: w.rotary, layout: layout)
        }
        for b in 0..<batch {
            Attention.attend(query: query.pointer + b * t * h * d, key: key.pointer + b * t * hkv * d,
                             value: value.pointer + b * t * hkv * d, out: attention.pointer + b * t * h * d,
                             scores: w("probabilities"), tokens: t, heads: h, kvHeads: hkv, headDimension: d)
        }
        project(attention, .attentionOutput, bias: nil, into: x, accumulate: true)
        xMid.assign(x)

        rmsNorm(x, weight: weights.ffnNorm, epsilon: epsilon, into: normed2, reciprocalRMS: saved("rrms2"))
        project(normed2, .gate, bias: nil, into: gate)
        project(normed2, .up, bias: nil, into: up)
        swigluForward(gate: gate.pointer, up: up.pointer, out: hidden2.pointer, count: gate.count)
        project(hidden2, .down, bias: nil, into: x, accumulate: true)
    }

    // MARK: Layer backward

    /// Turns dX [N, C], the gradient at the layer's output, into the gradient at its input x_in, in place,
    /// accumulating adapter gradients; the workspace holds this layer's intermediates from `forward`.
    ///
    ///     x_out = xMid + proj_down(silu(gate) ⊙ up),   gate, up = proj(rmsNorm(xMid))
    ///     xMid  = x_in + proj_o(attend(rope(q), rope(k), v)),   q, k, v = proj(rmsNorm(x_in))
    static func backward(_ weights: LayerWeights, index l: Int, config c: ModelConfig, layout: RotaryLayout,
                         input xIn: Tensor, dX: Tensor, batch: Int, adapters: SparseLoRA?, workspace w: LoRATrainingWorkspace) {
        let n = batch * w.tokens, epsilon = Float(c.rmsNormEpsilon)
        let h = c.headCount, hkv = c.kvHeadCount, d = c.headDim, t = w.tokens
        let delta = w("delta"), dDelta = w("dDelta"), xDrop = w("xDrop", rows: n)
        let dNormed = w("dNormed", rows: n), normScratch = w("normScratch")
        func saved(_ name: String) -> Tensor { w.saved(name, layer: l, rows: n) }
        func projectBackward(_ dY: Tensor, _ input: Tensor, _ p: SparseLoRA.Projection, dInput: Tensor) {
            AdaptedProjection.backward(dY, x: input, weight: SparseLoRA.weight(weights, p), dX: dInput,
                                       adapters: adapters, layer: l, projection: p,
                                       delta: delta, dDelta: dDelta, xDrop: xDrop)
        }

        // x_out = xMid + hidden2·W_downᵀ: dXMid = dX (residual) + rmsNorm'(gate/up branch).
        let dHidden2 = w("dHidden2", rows: n), dGate = w("dGate", rows: n), dUp = w("dUp", rows: n)
        dHidden2.zero(); dGate.zero(); dUp.zero(); dNormed.zero()
        projectBackward(dX, saved("hidden2"), .down, dInput: dHidden2)
        // hidden2 = silu(gate) ⊙ up
        swigluBackward(dHidden2, gate: saved("gate"), up: saved("up"), dGate: dGate, dUp: dUp)
        let normed2 = saved("normed2")
        projectBackward(dGate, normed2, .gate, dInput: dNormed)
        projectBackward(dUp, normed2, .up, dInput: dNormed)
        // normed2 = rmsNorm(xMid): dX += rmsNorm'ᵀ · dNormed (the norm weight is frozen: its gradient goes to scratch).
        rmsNormBackward(dNormed, x: saved("xMid"), weight: weights.ffnNorm, reciprocalRMS: saved("rrms2"),
                        epsilon: epsilon, dX: dX, dWeight: normScratch)

        // xMid = x_in + attention·W_oᵀ
        let dAttention = w("dAttention", rows: n), dQuery = w("dQuery", rows: n)
        let dKey = w("dKey", rows: n), dValue = w("dValue", rows: n)
        dAttention.zero(); dQuery.zero(); dKey.zero(); dValue.zero(); dNormed.zero()
        projectBackward(dX, saved("attention"), .attentionOutput, dInput: dAttention)
        let query = saved("query"), key = saved("key"), value = saved("value")
        for b in 0..<batch {
            attendBackward(query: query.pointer + b * t * h * d, key: key.pointer + b * t * hkv * d,
                           value: value.pointer + b * t * hkv * d, dOut: dAttention.pointer + b * t * h * d,
                           dQuery: dQuery.pointer + b * t * h * d, dKey: dKey.pointer + b * t * hkv * d,
                           dValue: dValue.pointer + b * t * hkv * d, workspace: w,
                           tokens: t, heads: h, kvHeads: hkv, headDimension: d)
        }
        // q, k = rope(q', k'): the rotation's transpose takes the gradients back to q', k'.
        w.positions.withUnsafeBufferPointer { positions in
            rotaryEmbeddingBackward(dQuery.pointer, tokens: n, heads: h, headDimension: d,
                                    positions: positions.baseAddress!, table: w.rotary, layout: layout)
            rotaryEmbeddingBackward(dKey.pointer, tokens: n, heads: hkv, headDimension: d,
                                    positions: positions.baseAddress!, table: w.rotary, layout: layout)
        }
        // q', k', v = proj(normed1) (+ constant biases)
        let normed1 = saved("normed1")
        projectBackward(dQuery, normed1, .query, dInput: dNormed)
        projectBackward(dKey, normed1, .key, dInput: dNormed)
        projectBackward(dValue, normed1, .value, dInput: dNormed)
        // normed1 = rmsNorm(x_in): dX (the residual's dXMid) += rmsNorm'ᵀ · dNormed
        rmsNormBackward(dNormed, x: xIn, weight: weights.attentionNorm, reciprocalRMS: saved("rrms1"),
                        epsilon: epsilon, dX: dX, dWeight: normScratch)
    }

    /// Backward of one window's causal GQA attention (see `Attention.attend`), accumulating into
    /// dQuery, dKey, dValue; the probabilities are recomputed per kv group from q and k.
    ///
    ///     S_h = q_h·k_gᵀ/√D,  P_h = causalSoftmax(S_h),  out_h = P_h·v_g
    ///     dV_g += Σ_h P_hᵀ·dOut_h;   dP_h = dOut_h·v_gᵀ;   dS_h = softmax'(P_h, dP_h)
    ///     dQ_h += dS_h·k_g/√D;       dK_g += Σ_h dS_hᵀ·q_h/√D
    ///
    /// query, dOut, dQuery [T, H, D]; key, value, dKey, dValue [T, Hkv, D].
    static func attendBackward(query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
                               dOut: UnsafePointer<Float>, dQuery: UnsafeMutablePointer<Float>,
                               dKey: UnsafeMutablePointer<Float>, dValue: UnsafeMutablePointer<Float>,
                               workspace w: LoRATrainingWorkspace,
                               tokens t: Int, heads h: Int, kvHeads hkv: Int, headDimension d: Int) {
        let group = h / hkv, scale = 1 / Float(d).squareRoot()
        let p = w("probabilities").pointer, dP = w("dProbabilities").pointer, dS = w("dScores").pointer
        for g in 0..<hkv {
            batchedSgemm(transposeA: false, transposeB: true, m: t, n: t, k: d, alpha: scale,
                         a: query + g * group * d, lda: h * d, strideA: d, b: key + g * d, ldb: hkv * d, strideB: 0,
                         c: p, ldc: t, strideC: t * t, batchCount: group)
            causalSoftmaxForward(p, y: p, matrices: group, queries: t, keys: t, offset: 0)
            // dP_h = dOut_h · v_gᵀ
            batchedSgemm(transposeA: false, transposeB: true, m: t, n: t, k: d,
                         a: dOut + g * group * d, lda: h * d, strideA: d, b: value + g * d, ldb: hkv * d, strideB: 0,
                         c: dP, ldc: t, strideC: t * t, batchCount: group)
            dS.update(repeating: 0, count: group * t * t)
            causalSoftmaxBackward(dY: dP, y: p, dX: dS, matrices: group, queries: t, keys: t, offset: 0)
            // dQ_h += dS_h · k_g / √D
            batchedSgemm(transposeA: false, transposeB: false, m: t, n: d, k: t, alpha: scale,
                         a: dS, lda: t, strideA: t * t, b: key + g * d, ldb: hkv * d, strideB: 0,
                         beta: 1, c: dQuery + g * group * d, ldc: h * d, strideC: d, batchCount: group)
            // The group's heads share dK_g and dV_g: one head at a time, so no two products write them together.
            for head in 0..<group {
                let column = (g * group + head) * d
                sgemm(transposeA: true, transposeB: false, m: t, n: d, k: t,
                      a: p + head * t * t, lda: t, b: dOut + column, ldb: h * d,
                      beta: 1, c: dValue + g * d, ldc: hkv * d)
                sgemm(transposeA: true, transposeB: false, m: t, n: d, k: t, alpha: scale,
                      a: dS + head * t * t, lda: t, b: query + column, ldb: h * d,
                      beta: 1, c: dKey + g * d, ldc: hkv * d)
            }
        }
    }
}

// MARK: - Decoder with adapters

extension Decoder {
    /// The final (normed) hidden states [B·T, C] of `tokens` through the decoder with `adapters`
    /// (nil: the plain decoder), keeping every layer's input in the workspace for `adapterGradients`.
    /// `stopIf` is asked before every layer; a yes abandons the pass (`TransformerError.interrupted`).
    public func adaptedForward(_ tokens: [[Int32]], adapters: SparseLoRA?, workspace w: LoRATrainingWorkspace,
                               stopIf: () -> Bool = { false }) throws(TransformerError) -> Tensor {
        let batch = tokens.count, n = batch * w.tokens
        precondition(batch >= 1 && batch <= w.batchCapacity, "decoder: \(batch) windows for a workspace of \(w.batchCapacity)")
        let inputs = (0...config.layerCount).map { w.layerInputs[$0].slice(0..<n) }
        embed(tokens, into: inputs[0], tokensPerWindow: w.tokens)
        for (l, layer) in weights.layers.enumerated() {
            if stopIf() { throw .interrupted }
            inputs[l + 1].assign(inputs[l])
            AdaptedDecoderLayer.forward(layer, index: l, config: config, layout: weights.rotaryLayout,
                                        residual: inputs[l + 1], batch: batch, adapters: adapters, workspace: w)
        }
        let hidden = w("hidden", rows: n)
        rmsNorm(inputs[config.layerCount], weight: weights.outputNorm, epsilon: Float(config.rmsNormEpsilon), into: hidden)
        return hidden
    }

    /// The `objective` (`TrainingObjective`: next-token cross-entropy of `targets` [B][T] (negative: not
    /// scored) after `tokens` [B][T] by default; with a `teacher`, distillation terms too) and its gradient
    /// with respect to every active adapter entry, accumulated into `adapters`' gradients (the caller zeroes
    /// them). Returns the loss split by term. `stopIf` is asked before every layer of forward and
    /// backward (a step of a 135M model takes seconds); a yes abandons the step with
    /// `TransformerError.interrupted`, the gradients then partial.
    public func adapterGradients(tokens: [[Int32]], targets: [[Int32]], adapters: SparseLoRA,
                                 workspace w: LoRATrainingWorkspace,
                                 objective: TrainingObjective = .crossEntropy, teacher: DistillationTeacher? = nil,
                                 stopIf: () -> Bool = { false }) throws(TransformerError) -> TrainingLoss {
        let batch = tokens.count, n = batch * w.tokens, c = config
        precondition(targets.count == batch && targets.allSatisfy { $0.count == w.tokens },
                     "decoder: targets must be [\(batch)][\(w.tokens)] like the tokens")
        precondition(!objective.needsTeacher || teacher != nil, "decoder: the objective \(objective) needs a teacher")
        let taught = try objective.needsTeacher ? teacher!.forward(tokens, stopIf: stopIf) : nil
        let hidden = try adaptedForward(tokens, adapters: adapters, workspace: w, stopIf: stopIf)
        let dHidden = w("dHidden", rows: n), dX = w("dX", rows: n)
        dHidden.zero()
        var loss = objectiveHead(hidden: hidden, targets: targets.flatMap { $0 }, objective: objective, teacher: teacher,
                                 teacherHidden: taught?.hidden, dHidden: dHidden, workspace: w)
        // hidden = rmsNorm(x_L)
        dX.zero()
        let inputs = (0...c.layerCount).map { w.layerInputs[$0].slice(0..<n) }
        rmsNormBackward(dHidden, x: inputs[c.layerCount], weight: weights.outputNorm, reciprocalRMS: nil,
                        epsilon: Float(c.rmsNormEpsilon), dX: dX, dWeight: w("normScratch"))
        let residual = w("residual", rows: n)
        for l in stride(from: c.layerCount - 1, through: 0, by: -1) {
            if stopIf() { throw .interrupted }
            // Under `.recompute`, rerun layer l's forward from its saved input first (the last
            // layer's intermediates are still in the workspace); then differentiate it.
            if w.policy == .recompute && l < c.layerCount - 1 {
                residual.assign(inputs[l])
                AdaptedDecoderLayer.forward(weights.layers[l], index: l, config: c, layout: weights.rotaryLayout,
                                            residual: residual, batch: batch, adapters: adapters, workspace: w)
            }
            if let taught, objective.hiddenStateWeight > 0 {
                // The hidden-state term of layer l's output x_{l+1} joins dX before layer l's backward.
                addHiddenStateTerm(layer: l, student: inputs[l + 1], teacher: taught.blockOutputs[l], objective: objective,
                                   dX: dX, loss: &loss)
            }
            AdaptedDecoderLayer.backward(weights.layers[l], index: l, config: c, layout: weights.rotaryLayout,
                                         input: inputs[l], dX: dX, batch: batch, adapters: adapters, workspace: w)
        }
        return loss
    }
}
