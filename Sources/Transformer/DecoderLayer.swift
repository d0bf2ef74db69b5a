import Kernels
import ModelFormats

/// One pre-norm decoder block of the LLaMA family, the one implementation that evaluation, cached
/// decoding, calibration and training all run (`ModelConfig.BlockOptions` lists what a family adds):
///
///     h = rmsNorm(x);  q, k, v = proj(h);  q, k = qkNorm(q, k);  rope(q, k)
///     x = x + postNorm(proj_o(attend(q, k, v)))
///     x = x + postNorm(proj_down(act(proj_gate(rmsNorm(x))) ⊙ proj_up(rmsNorm(x))))
///
/// (qkNorm and postNorm only where the family has them.) x [N, C] is updated in place; without a
/// post-norm the output projections add into it directly (C += A·Bᵀ). With `adapters`, every
/// projection adds its sparse-LoRA branch (`AdaptedProjection`), and with ΔW = 0 the result is bit
/// for bit that of the plain pass. Backward sits below its forward and reads the activations the
/// forward saved.
enum DecoderLayer {
    /// Runs layer `l` over the rows of x, attending as `keys` says; positions [N] are the rows' rope positions.
    static func forward(_ w: LayerWeights, index l: Int, config c: ModelConfig, layout: RotaryLayout, rotary: RotaryTable,
                        positions: UnsafePointer<Int32>, residual x: Tensor, keys: AttentionKeys,
                        activations a: LayerActivations, scratch s: LayerScratch, adapters: SparseLoRA?) {
        let n = x.rowCount, epsilon = Float(c.rmsNormEpsilon)
        let h = c.headCount, hkv = c.kvHeadCount, d = c.headDim
        func project(_ input: Tensor, _ p: SparseLoRA.Projection, bias: Tensor?, into y: Tensor, accumulate: Bool = false) {
            if let adapters {
                AdaptedProjection.forward(input, weight: SparseLoRA.weight(w, p), bias: bias, into: y, accumulate: accumulate,
                                          adapters: adapters, layer: l, projection: p, delta: s.delta!, xDrop: s.adapterInput!)
            } else {
                Attention.project(input, w.projection(p), bias: bias, into: y, accumulate: accumulate, scratch: s.matmul)
            }
        }
        /// x += postNorm(y), or y's projection added straight into x when the family has no post-norm.
        func addSublayer(_ input: Tensor, _ p: SparseLoRA.Projection, output: Tensor?, norm: Tensor?, rrms: Tensor?) {
            guard let norm, let output, let normed = a.sublayerNormed?.slice(0..<n) else {
                return project(input, p, bias: nil, into: x, accumulate: true)
            }
            project(input, p, bias: nil, into: output)
            rmsNorm(output, weight: norm, epsilon: epsilon, into: normed, reciprocalRMS: rrms)
            addForward(x.pointer, normed.pointer, out: x.pointer, count: x.count)
        }

        rmsNorm(x, weight: w.attentionNorm, epsilon: epsilon, into: a.normed1, reciprocalRMS: a.rrms1)
        project(a.normed1, .query, bias: w.queryBias, into: a.queryUnnormed ?? a.query)
        project(a.normed1, .key, bias: w.keyBias, into: a.keyUnnormed ?? a.key)
        project(a.normed1, .value, bias: w.valueBias, into: a.value)
        if let queryNorm = w.queryNorm, let keyNorm = w.keyNorm {
            // Per head: rows of D. Training keeps the un-normed rows (and 1/rms) for backward.
            rmsNorm((a.queryUnnormed ?? a.query).reshaped([n * h, d]), weight: queryNorm, epsilon: epsilon,
                    into: a.query.reshaped([n * h, d]), reciprocalRMS: a.queryRRMS)
            rmsNorm((a.keyUnnormed ?? a.key).reshaped([n * hkv, d]), weight: keyNorm, epsilon: epsilon,
                    into: a.key.reshaped([n * hkv, d]), reciprocalRMS: a.keyRRMS)
        }
        rotaryEmbeddingForward(a.query.pointer, tokens: n, heads: h, headDimension: d, positions: positions, table: rotary, layout: layout)
        rotaryEmbeddingForward(a.key.pointer, tokens: n, heads: hkv, headDimension: d, positions: positions, table: rotary, layout: layout)

        let scoring = Attention.Scoring(config: c, layer: l)
        switch keys {
        case .windows(let batch, let t):
            precondition(batch * t == n, "decoder layer: \(batch) windows of \(t) for \(n) rows")
            for b in 0..<batch {
                Attention.attend(query: a.query.pointer + b * t * h * d, key: a.key.pointer + b * t * hkv * d,
                                 value: a.value.pointer + b * t * hkv * d, rowStride: hkv * d, groupStride: d,
                                 out: a.attention.pointer + b * t * h * d, scores: s.scores,
                                 queries: t, keys: t, offset: 0, heads: h, kvHeads: hkv, headDimension: d, scoring: scoring)
            }
        case .cache(let cache, let layer):
            let start = cache.count
            cache.store(layer: layer, keys: a.key, values: a.value, at: start)
            Attention.attend(query: a.query.pointer, key: cache.keys[layer].pointer, value: cache.values[layer].pointer,
                             rowStride: d, groupStride: cache.capacity * d, out: a.attention.pointer, scores: s.scores,
                             queries: n, keys: start + n, offset: start, heads: h, kvHeads: hkv, headDimension: d,
                             scoring: scoring)
        }
        addSublayer(a.attention, .attentionOutput, output: a.attentionOutput, norm: w.attentionPostNorm,
                    rrms: a.attentionOutputRRMS)
        a.xMid?.assign(x)

        rmsNorm(x, weight: w.ffnNorm, epsilon: epsilon, into: a.normed2, reciprocalRMS: a.rrms2)
        project(a.normed2, .gate, bias: nil, into: a.gate)
        project(a.normed2, .up, bias: nil, into: a.up)
        FeedForward.activate(c.block.gateActivation, gate: a.gate, up: a.up, into: a.hidden)
        addSublayer(a.hidden, .down, output: a.ffnOutput, norm: w.ffnPostNorm, rrms: a.ffnOutputRRMS)
    }

    // MARK: Backward

    /// The gradient buffers of one layer's backward (views of N rows; training workspace).
    ///
    /// Shapes: dNormed, dSublayer [N, C]; dQuery, dAttention, dQueryUnnormed [N, H·D];
    /// dKey, dValue, dKeyUnnormed [N, Hkv·D]; dHidden, dGate, dUp [N, F]; probabilities,
    /// dProbabilities, dScores, capped ≥ [H/Hkv, T, T]; dDelta like delta; normScratch ≥ [max(C, D)].
    struct Gradients {
        var dNormed: Tensor
        var dSublayer: Tensor?
        var dQuery: Tensor
        var dKey: Tensor
        var dValue: Tensor
        var dQueryUnnormed: Tensor?
        var dKeyUnnormed: Tensor?
        var dAttention: Tensor
        var dHidden: Tensor
        var dGate: Tensor
        var dUp: Tensor
        var probabilities: Tensor
        var dProbabilities: Tensor
        var dScores: Tensor
        var capped: Tensor?
        var dDelta: Tensor
        var normScratch: Tensor
    }

    /// Turns dX [N, C], the gradient at layer l's output, into the gradient at its input x_in, in place,
    /// accumulating adapter gradients; `a` holds this layer's activations from `forward` over
    /// `batch` windows of `tokens` rows.
    ///
    ///     x_out = xMid + post(proj_down(act(gate) ⊙ up)),   gate, up = proj(rmsNorm(xMid))
    ///     xMid  = x_in + post(proj_o(attend(rope(qkNorm(q)), rope(qkNorm(k)), v))),   q, k, v = proj(rmsNorm(x_in))
    static func backward(_ w: LayerWeights, index l: Int, config c: ModelConfig, layout: RotaryLayout, rotary: RotaryTable,
                         positions: UnsafePointer<Int32>, input xIn: Tensor, dX: Tensor, batch: Int, tokens t: Int,
                         activations a: LayerActivations, gradients g: Gradients, scratch s: LayerScratch,
                         adapters: SparseLoRA?) {
        let n = batch * t, epsilon = Float(c.rmsNormEpsilon)
        let h = c.headCount, hkv = c.kvHeadCount, d = c.headDim
        func projectBackward(_ dY: Tensor, _ input: Tensor, _ p: SparseLoRA.Projection, dInput: Tensor) {
            AdaptedProjection.backward(dY, x: input, weight: SparseLoRA.weight(w, p), dX: dInput, adapters: adapters,
                                       layer: l, projection: p, delta: s.delta!, dDelta: g.dDelta, xDrop: s.adapterInput!)
        }
        /// The gradient at a sublayer's projection output: dX itself, or through its post-norm.
        func sublayerGradient(output: Tensor?, norm: Tensor?, rrms: Tensor?) -> Tensor {
            guard let output, let norm, let dSublayer = g.dSublayer?.slice(0..<n) else { return dX }
            dSublayer.zero()
            rmsNormBackward(dX, x: output, weight: norm, reciprocalRMS: rrms, epsilon: epsilon, dX: dSublayer,
                            dWeight: g.normScratch.slice(0..<c.hiddenSize))
            return dSublayer
        }
        let normScratchC = g.normScratch.slice(0..<c.hiddenSize)

        // MLP: x_out = xMid + post(hidden·W_downᵀ)
        g.dHidden.zero(); g.dGate.zero(); g.dUp.zero(); g.dNormed.zero()
        let dFFNOutput = sublayerGradient(output: a.ffnOutput, norm: w.ffnPostNorm, rrms: a.ffnOutputRRMS)
        projectBackward(dFFNOutput, a.hidden, .down, dInput: g.dHidden)
        FeedForward.activateBackward(c.block.gateActivation, g.dHidden, gate: a.gate, up: a.up, dGate: g.dGate, dUp: g.dUp)
        projectBackward(g.dGate, a.normed2, .gate, dInput: g.dNormed)
        projectBackward(g.dUp, a.normed2, .up, dInput: g.dNormed)
        // normed2 = rmsNorm(xMid): dX += rmsNorm'ᵀ · dNormed (norm weights are frozen: their gradient goes to scratch).
        rmsNormBackward(g.dNormed, x: a.xMid!, weight: w.ffnNorm, reciprocalRMS: a.rrms2, epsilon: epsilon, dX: dX,
                        dWeight: normScratchC)

        // Attention: xMid = x_in + post(attention·W_oᵀ)
        g.dAttention.zero(); g.dQuery.zero(); g.dKey.zero(); g.dValue.zero(); g.dNormed.zero()
        let dAttentionOutput = sublayerGradient(output: a.attentionOutput, norm: w.attentionPostNorm, rrms: a.attentionOutputRRMS)
        projectBackward(dAttentionOutput, a.attention, .attentionOutput, dInput: g.dAttention)
        let scoring = Attention.Scoring(config: c, layer: l)
        for b in 0..<batch {
            Attention.attendBackward(query: a.query.pointer + b * t * h * d, key: a.key.pointer + b * t * hkv * d,
                                     value: a.value.pointer + b * t * hkv * d, dOut: g.dAttention.pointer + b * t * h * d,
                                     dQuery: g.dQuery.pointer + b * t * h * d, dKey: g.dKey.pointer + b * t * hkv * d,
                                     dValue: g.dValue.pointer + b * t * hkv * d,
                                     probabilities: g.probabilities.pointer, dProbabilities: g.dProbabilities.pointer,
                                     dScores: g.dScores.pointer, capped: g.capped?.pointer,
                                     tokens: t, heads: h, kvHeads: hkv, headDimension: d, scoring: scoring)
        }
        // q, k = rope(q', k'): the rotation's transpose takes the gradients back to q', k'.
        rotaryEmbeddingBackward(g.dQuery.pointer, tokens: n, heads: h, headDimension: d, positions: positions, table: rotary, layout: layout)
        rotaryEmbeddingBackward(g.dKey.pointer, tokens: n, heads: hkv, headDimension: d, positions: positions, table: rotary, layout: layout)
        var dQueryProjection = g.dQuery, dKeyProjection = g.dKey
        if let queryNorm = w.queryNorm, let keyNorm = w.keyNorm, let dQueryUnnormed = g.dQueryUnnormed,
           let dKeyUnnormed = g.dKeyUnnormed {
            // q' = qNorm(q_proj) per head.
            let normScratchD = g.normScratch.slice(0..<d)
            dQueryUnnormed.zero(); dKeyUnnormed.zero()
            rmsNormBackward(g.dQuery.reshaped([n * h, d]), x: a.queryUnnormed!.reshaped([n * h, d]), weight: queryNorm,
                            reciprocalRMS: a.queryRRMS, epsilon: epsilon, dX: dQueryUnnormed.reshaped([n * h, d]),
                            dWeight: normScratchD)
            rmsNormBackward(g.dKey.reshaped([n * hkv, d]), x: a.keyUnnormed!.reshaped([n * hkv, d]), weight: keyNorm,
                            reciprocalRMS: a.keyRRMS, epsilon: epsilon, dX: dKeyUnnormed.reshaped([n * hkv, d]),
                            dWeight: normScratchD)
            (dQueryProjection, dKeyProjection) = (dQueryUnnormed, dKeyUnnormed)
        }
        // q', k', v = proj(normed1) (+ constant biases)
        projectBackward(dQueryProjection, a.normed1, .query, dInput: g.dNormed)
        projectBackward(dKeyProjection, a.normed1, .key, dInput: g.dNormed)
        projectBackward(g.dValue, a.normed1, .value, dInput: g.dNormed)
        // normed1 = rmsNorm(x_in): dX (the residual's dXMid) += rmsNorm'ᵀ · dNormed
        rmsNormBackward(g.dNormed, x: xIn, weight: w.attentionNorm, reciprocalRMS: a.rrms1, epsilon: epsilon, dX: dX,
                        dWeight: normScratchC)
    }
}
