import Kernels
import ModelFormats

// Backward of the next-token cross-entropy through the decoder, to the sparse-LoRA adapters only
// (base weights frozen: no gradient buffers for them).
//
// Activation memory: per-layer recomputation (gradient checkpointing at layer boundaries). Forward
// keeps only each layer's input x_l [N, C] (L + 1 of them); backward reruns one layer's forward,
// saving that layer's intermediates into one layer-sized set of buffers, then differentiates it
// (the last layer's are still there from the forward, so it is not rerun).
//
// Measured on SmolLM2-135M (dequantised to Float32, L = 30, C = 576, F = 1536), T = 256, rank 8,
// dropout 0.1, release build, 2 cores: training workspace 72 MB at B = 1 and 183 MB at B = 4
// (73 MB of it the 31 layer inputs), peak RSS 807 MB with the 540 MB model; step 5.6 s (B = 1) and
// 20.9 s (B = 4, 49 tokens/s), of which the recomputed forward is one adapted forward, 1.6 s / 5.3 s
// (≈ 26%). Storing every layer's intermediates instead needs N·(3C + 2·H·D + 2·Hkv·D + 3F + 2)
// ≈ 7.9K floats per token per layer: 32 MB per layer at B = 4, ≈ 970 MB for 30 layers (1.25 GB with
// the attention probabilities). A quarter of the step time is worth less here than ~0.8 GB on a
// device that also holds the model, so we recompute.
//
// The step is dominated by full-size GEMMs: with dropout each projection costs 2 (forward) + 2
// (recomputed forward) + 3 (dX through W, dX through ΔW, G = dYᵀ·x_d) products of its size, against
// 1 + 1 + 2 without dropout (W + ΔW fused): 11.7 s instead of 20.9 s at B = 4 (the plain inference
// forward takes 2.6 s).

/// The buffers of one training step over a [B, T] batch: layer inputs, one layer's saved
/// intermediates, their gradients, and adapter scratch — named views of one allocation sized by
/// `LoRATrainingWorkspace.shapes(config:batch:tokens:chunkRows:)`.
///
/// Shapes (N = B·T): layerInputs [L + 1, N, C]; hidden, dHidden, dX, residual, normed1, normed2,
/// xMid, dNormed [N, C]; rrms1, rrms2 [N]; query, attention, dQuery, dAttention [N, H·D];
/// key, value, dKey, dValue [N, Hkv·D]; gate, up, hidden2, dHidden2, dGate, dUp [N, F];
/// probabilities, dProbabilities, dScores [H/Hkv, T, T]; delta, dDelta [max out·in];
/// xDrop [N, max(C, F, H·D)]; logits [chunkRows, V]; normScratch [C].
public final class LoRATrainingWorkspace {
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
    public static func shapes(config c: ModelConfig, batch: Int, tokens t: Int, chunkRows: Int) -> [(String, [Int])] {
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
        return shapes
    }

    /// Buffers for `batch` windows of `tokens` tokens of a decoder with `weights`.
    public init(weights: DecoderWeights, batch: Int, tokens: Int, chunkRows: Int = 128) {
        precondition(batch > 0 && tokens > 0 && chunkRows > 0, "training workspace: batch \(batch) × \(tokens) tokens, chunks of \(chunkRows)")
        let shapes = LoRATrainingWorkspace.shapes(config: weights.config, batch: batch, tokens: tokens, chunkRows: chunkRows)
        let offsets = shapes.reduce(into: [0]) { offsets, entry in
            offsets.append(offsets.last! + (entry.1.reduce(1, *) + 15) / 16 * 16)
        }
        let storage = TensorStorage(count: offsets.last!)
        var views: [String: Tensor] = [:]
        for (entry, offset) in zip(shapes, offsets) { views[entry.0] = Tensor(shape: entry.1, storage: storage, offset: offset) }
        self.views = views
        layerInputs = views["layerInputs"]!
        batchCapacity = batch
        self.tokens = tokens
        self.chunkRows = chunkRows
        floatCount = offsets.last!
        positions = (0..<(batch * tokens)).map { Int32($0 % tokens) }
        rotary = RotaryTable(inverseFrequencies: weights.ropeInverseFrequencies, positionCount: tokens)
    }

    /// The first `rows` rows of a named buffer (all of it for buffers not in rows of N).
    func callAsFunction(_ name: String, rows: Int? = nil) -> Tensor {
        let view = views[name]!
        guard let rows else { return view }
        return view.slice(0..<rows)
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
        let normed1 = w("normed1", rows: n), normed2 = w("normed2", rows: n)
        let query = w("query", rows: n), key = w("key", rows: n), value = w("value", rows: n)
        let attention = w("attention", rows: n), xMid = w("xMid", rows: n)
        let gate = w("gate", rows: n), up = w("up", rows: n), hidden2 = w("hidden2", rows: n)
        let delta = w("delta"), xDrop = w("xDrop", rows: n)
        func project(_ input: Tensor, _ p: SparseLoRA.Projection, bias: Tensor?, into y: Tensor, accumulate: Bool = false) {
            AdaptedProjection.forward(input, weight: SparseLoRA.weight(weights, p), bias: bias, into: y, accumulate: accumulate,
                                      adapters: adapters, layer: l, projection: p, delta: delta, xDrop: xDrop)
        }

        rmsNorm(x, weight: weights.attentionNorm, epsilon: epsilon, into: normed1, reciprocalRMS: w("rrms1", rows: n))
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

        rmsNorm(x, weight: weights.ffnNorm, epsilon: epsilon, into: normed2, reciprocalRMS: w("rrms2", rows: n))
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
        func projectBackward(_ dY: Tensor, _ input: Tensor, _ p: SparseLoRA.Projection, dInput: Tensor) {
            AdaptedProjection.backward(dY, x: input, weight: SparseLoRA.weight(weights, p), dX: dInput,
                                       adapters: adapters, layer: l, projection: p,
                                       delta: delta, dDelta: dDelta, xDrop: xDrop)
        }

        // x_out = xMid + hidden2·W_downᵀ: dXMid = dX (residual) + rmsNorm'(gate/up branch).
        let dHidden2 = w("dHidden2", rows: n), dGate = w("dGate", rows: n), dUp = w("dUp", rows: n)
        dHidden2.zero(); dGate.zero(); dUp.zero(); dNormed.zero()
        projectBackward(dX, w("hidden2", rows: n), .down, dInput: dHidden2)
        // hidden2 = silu(gate) ⊙ up
        swigluBackward(dHidden2, gate: w("gate", rows: n), up: w("up", rows: n), dGate: dGate, dUp: dUp)
        let normed2 = w("normed2", rows: n)
        projectBackward(dGate, normed2, .gate, dInput: dNormed)
        projectBackward(dUp, normed2, .up, dInput: dNormed)
        // normed2 = rmsNorm(xMid): dX += rmsNorm'ᵀ · dNormed (the norm weight is frozen: its gradient goes to scratch).
        rmsNormBackward(dNormed, x: w("xMid", rows: n), weight: weights.ffnNorm, reciprocalRMS: w("rrms2", rows: n),
                        epsilon: epsilon, dX: dX, dWeight: normScratch)

        // xMid = x_in + attention·W_oᵀ
        let dAttention = w("dAttention", rows: n), dQuery = w("dQuery", rows: n)
        let dKey = w("dKey", rows: n), dValue = w("dValue", rows: n)
        dAttention.zero(); dQuery.zero(); dKey.zero(); dValue.zero(); dNormed.zero()
        projectBackward(dX, w("attention", rows: n), .attentionOutput, dInput: dAttention)
        let query = w("query", rows: n), key = w("key", rows: n), value = w("value", rows: n)
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
        let normed1 = w("normed1", rows: n)
        projectBackward(dQuery, normed1, .query, dInput: dNormed)
        projectBackward(dKey, normed1, .key, dInput: dNormed)
        projectBackward(dValue, normed1, .value, dInput: dNormed)
        // normed1 = rmsNorm(x_in): dX (the residual's dXMid) += rmsNorm'ᵀ · dNormed
        rmsNormBackward(dNormed, x: xIn, weight: weights.attentionNorm, reciprocalRMS: w("rrms1", rows: n),
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
    public func adaptedForward(_ tokens: [[Int32]], adapters: SparseLoRA?, workspace w: LoRATrainingWorkspace) -> Tensor {
        let batch = tokens.count, n = batch * w.tokens
        precondition(batch >= 1 && batch <= w.batchCapacity, "decoder: \(batch) windows for a workspace of \(w.batchCapacity)")
        let inputs = (0...config.layerCount).map { w.layerInputs[$0].slice(0..<n) }
        embed(tokens, into: inputs[0], tokensPerWindow: w.tokens)
        for (l, layer) in weights.layers.enumerated() {
            inputs[l + 1].assign(inputs[l])
            AdaptedDecoderLayer.forward(layer, index: l, config: config, layout: weights.rotaryLayout,
                                        residual: inputs[l + 1], batch: batch, adapters: adapters, workspace: w)
        }
        let hidden = w("hidden", rows: n)
        rmsNorm(inputs[config.layerCount], weight: weights.outputNorm, epsilon: Float(config.rmsNormEpsilon), into: hidden)
        return hidden
    }

    /// Mean next-token cross-entropy of `targets` [B][T] (negative: not scored) after `tokens` [B][T],
    /// accumulating its gradient with respect to every active adapter entry into `adapters`' gradients
    /// (the caller zeroes them). Returns the loss.
    public func adapterGradients(tokens: [[Int32]], targets: [[Int32]], adapters: SparseLoRA,
                                 workspace w: LoRATrainingWorkspace) -> Double {
        let batch = tokens.count, n = batch * w.tokens, c = config
        precondition(targets.count == batch && targets.allSatisfy { $0.count == w.tokens },
                     "decoder: targets must be [\(batch)][\(w.tokens)] like the tokens")
        let hidden = adaptedForward(tokens, adapters: adapters, workspace: w)
        let dHidden = w("dHidden", rows: n), dX = w("dX", rows: n)
        dHidden.zero()
        let loss = chunkedCrossEntropy(hidden: hidden, weight: weights.output, targets: targets.flatMap { $0 },
                                       chunkRows: w.chunkRows, dHidden: dHidden, scratch: w("logits"))
        // hidden = rmsNorm(x_L)
        dX.zero()
        let inputs = (0...c.layerCount).map { w.layerInputs[$0].slice(0..<n) }
        rmsNormBackward(dHidden, x: inputs[c.layerCount], weight: weights.outputNorm, reciprocalRMS: nil,
                        epsilon: Float(c.rmsNormEpsilon), dX: dX, dWeight: w("normScratch"))
        let residual = w("residual", rows: n)
        for l in stride(from: c.layerCount - 1, through: 0, by: -1) {
            // Recompute layer l's forward from its saved input (the last layer's intermediates are
            // still in the workspace), then differentiate it.
            if l < c.layerCount - 1 {
                residual.assign(inputs[l])
                AdaptedDecoderLayer.forward(weights.layers[l], index: l, config: c, layout: weights.rotaryLayout,
                                            residual: residual, batch: batch, adapters: adapters, workspace: w)
            }
            AdaptedDecoderLayer.backward(weights.layers[l], index: l, config: c, layout: weights.rotaryLayout,
                                         input: inputs[l], dX: dX, batch: batch, adapters: adapters, workspace: w)
        }
        return loss
    }
}
