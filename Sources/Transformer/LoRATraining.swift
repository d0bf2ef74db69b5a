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

/// The buffers of one training step over a [B, T] batch: layer inputs, the saved activations
/// (every layer's under `.store`, one layer's under `.recompute`), their gradients, and adapter scratch —
/// named views of one allocation sized by `LoRATrainingWorkspace.shapes(config:batch:tokens:chunkRows:)`.
///
/// Shapes (N = B·T, L' = L under `.store`, 1 under `.recompute`): layerInputs [L + 1, N, C]; the saved
/// `LayerActivations` with a leading [L'] axis (normed1, normed2, xMid [N, C]; rrms1, rrms2 [N];
/// query, attention [N, H·D]; key, value [N, Hkv·D]; gate, up, hidden2 [N, F]; and where the family
/// has them queryUnnormed [N, H·D], keyUnnormed [N, Hkv·D], queryRRMS [N·H], keyRRMS [N·Hkv],
/// attentionOutput, ffnOutput [N, C], their rrms [N]); hidden, dHidden, dX, residual, dNormed [N, C];
/// dQuery, dAttention [N, H·D]; dKey, dValue [N, Hkv·D]; dHidden2, dGate, dUp [N, F];
/// probabilities, dProbabilities, dScores (and capped, for capping families) [H/Hkv, T, T];
/// delta, dDelta [max out·in]; xDrop [N, max(C, F, H·D)]; logits [chunkRows, V]; normScratch [max(C, D)].
public final class LoRATrainingWorkspace {
    /// What forward keeps for backward (see the top of this file).
    public enum ActivationPolicy: String, Sendable, CaseIterable {
        /// Every layer's intermediates: backward runs no forward again.
        case store
        /// One layer's intermediates: backward reruns each layer's forward from its saved input.
        case recompute
    }

    /// The activations one layer's backward reads, saved per layer under `.store`.
    static let savedNames: Set<String> = ["normed1", "rrms1", "queryUnnormed", "keyUnnormed", "queryRRMS", "keyRRMS",
                                          "query", "key", "value", "attention", "attentionOutput", "attentionOutputRRMS",
                                          "xMid", "normed2", "rrms2", "gate", "up", "hidden2", "ffnOutput", "ffnOutputRRMS"]

    public let policy: ActivationPolicy
    public let batchCapacity: Int
    public let tokens: Int
    /// Rows of logits the loss materialises at once.
    public let chunkRows: Int
    /// Floats held by all the buffers together.
    public var floatCount: Int { buffers.floatCount }
    let layerInputs: Tensor
    let buffers: NamedBuffers
    let positions: [Int32]
    let rotary: RotaryTables
    /// H and Hkv: the rows per token of the per-head norms' 1/rms buffers.
    let heads: (query: Int, key: Int)
    /// One layer's Float32 projections when the weights are kept compressed (a teacher read in place); nil otherwise.
    let expansion: FrozenLayerExpansion?

    /// The named buffer shapes of a workspace: the one function that sizes it. `boundaries`: the block
    /// boundaries kept in `layerInputs` (L + 1 for training and a teacher that returns every block's output; 1 for a
    /// pass that runs the blocks in place on one buffer: calibration, a teacher of the final hidden states only).
    public static func shapes(config c: ModelConfig, batch: Int, tokens t: Int, chunkRows: Int,
                              policy: ActivationPolicy = .store, boundaries: Int? = nil) -> [(String, [Int])] {
        let n = batch * t, hd = c.headCount * c.headDim, kvd = c.kvHeadCount * c.headDim
        let largestDelta = SparseLoRA.largestProjectionCount(config: c)
        let group = c.headCount / c.kvHeadCount
        var shapes: [(String, [Int])] = [("layerInputs", [boundaries ?? c.layerCount + 1, n, c.hiddenSize])]
        for name in ["hidden", "dHidden", "dX", "residual", "normed1", "normed2", "xMid", "dNormed"] {
            shapes.append((name, [n, c.hiddenSize]))
        }
        shapes += [("rrms1", [n]), ("rrms2", [n])]
        for name in ["query", "attention", "dQuery", "dAttention"] { shapes.append((name, [n, hd])) }
        for name in ["key", "value", "dKey", "dValue"] { shapes.append((name, [n, kvd])) }
        for name in ["gate", "up", "hidden2", "dHidden2", "dGate", "dUp"] { shapes.append((name, [n, c.ffnSize])) }
        for name in ["probabilities", "dProbabilities", "dScores"] { shapes.append((name, [group, t, t])) }
        if c.block.attentionSoftcap != nil { shapes.append(("capped", [group, t, t])) }
        if c.block.queryKeyNorm {
            shapes += [("queryUnnormed", [n, hd]), ("dQueryUnnormed", [n, hd]), ("queryRRMS", [n * c.headCount]),
                       ("keyUnnormed", [n, kvd]), ("dKeyUnnormed", [n, kvd]), ("keyRRMS", [n * c.kvHeadCount])]
        }
        if c.block.postSublayerNorms {
            shapes += [("attentionOutput", [n, c.hiddenSize]), ("attentionOutputRRMS", [n]),
                       ("ffnOutput", [n, c.hiddenSize]), ("ffnOutputRRMS", [n]),
                       ("sublayerNormed", [n, c.hiddenSize]), ("dSublayer", [n, c.hiddenSize])]
        }
        shapes += [("delta", [largestDelta]), ("dDelta", [largestDelta]),
                   ("xDrop", [n, max(c.hiddenSize, c.ffnSize, hd)]),
                   ("logits", [min(chunkRows, n), c.vocabSize]), ("normScratch", [max(c.hiddenSize, c.headDim)])]
        // Saved activations get a leading layer axis: L of them stored, or the one being differentiated.
        let copies = policy == .store ? c.layerCount : 1
        return shapes.map { savedNames.contains($0.0) ? ($0.0, [copies] + $0.1) : $0 }
    }

    /// Buffers for `batch` windows of `tokens` tokens of a decoder with `weights` (`boundaries`: see `shapes`).
    /// `expansion`: the layer buffers of compressed projections, shared with another workspace over the same weights
    /// that never runs at the same time (nil: the workspace makes its own when it needs them).
    public init(weights: DecoderWeights, batch: Int, tokens: Int, chunkRows: Int = 128, policy: ActivationPolicy = .store,
                boundaries: Int? = nil, expansion: FrozenLayerExpansion? = nil) {
        precondition(batch > 0 && tokens > 0 && chunkRows > 0, "training workspace: batch \(batch) × \(tokens) tokens, chunks of \(chunkRows)")
        precondition(boundaries.map { $0 >= 1 } ?? true, "training workspace: \(boundaries!) layer boundaries")
        buffers = NamedBuffers(LoRATrainingWorkspace.shapes(config: weights.config, batch: batch, tokens: tokens,
                                                            chunkRows: chunkRows, policy: policy, boundaries: boundaries))
        layerInputs = buffers["layerInputs"]
        self.policy = policy
        batchCapacity = batch
        self.tokens = tokens
        self.chunkRows = chunkRows
        positions = (0..<(batch * tokens)).map { Int32($0 % tokens) }
        rotary = RotaryTables(weights: weights, positionCount: tokens)
        heads = (weights.config.headCount, weights.config.kvHeadCount)
        self.expansion = expansion ?? FrozenLayerExpansion(weights: weights)
    }

    /// The first `rows` rows of a named buffer (all of it for buffers not in rows of N).
    func callAsFunction(_ name: String, rows: Int? = nil) -> Tensor {
        precondition(!Self.savedNames.contains(name), "training workspace: \(name) is saved per layer")
        let view = buffers[name]
        guard let rows else { return view }
        return view.slice(0..<rows)
    }

    /// The first `rows` rows of layer l's saved activation `name` (the single copy under `.recompute`).
    func saved(_ name: String, layer l: Int, rows: Int) -> Tensor {
        buffers[name][policy == .store ? l : 0].slice(0..<rows)
    }

    /// Layer l's saved activations for `rows` rows, with the buffers backward needs.
    func activations(layer l: Int, rows n: Int) -> LayerActivations {
        func saved(_ name: String) -> Tensor { self.saved(name, layer: l, rows: n) }
        func savedIfPresent(_ name: String) -> Tensor? { buffers.optional(name) == nil ? nil : saved(name) }
        // The per-head norms' 1/rms have N·H rows: slice those counts rather than N.
        func headRows(_ name: String, heads: Int) -> Tensor? {
            buffers.optional(name).map { $0[policy == .store ? l : 0].slice(0..<(n * heads)) }
        }
        return LayerActivations(
            normed1: saved("normed1"), rrms1: saved("rrms1"),
            queryUnnormed: savedIfPresent("queryUnnormed"), keyUnnormed: savedIfPresent("keyUnnormed"),
            queryRRMS: headRows("queryRRMS", heads: heads.query), keyRRMS: headRows("keyRRMS", heads: heads.key),
            query: saved("query"), key: saved("key"), value: saved("value"), attention: saved("attention"),
            attentionOutput: savedIfPresent("attentionOutput"), attentionOutputRRMS: savedIfPresent("attentionOutputRRMS"),
            xMid: saved("xMid"), normed2: saved("normed2"), rrms2: saved("rrms2"),
            gate: saved("gate"), up: saved("up"), hidden: saved("hidden2"),
            ffnOutput: savedIfPresent("ffnOutput"), ffnOutputRRMS: savedIfPresent("ffnOutputRRMS"),
            sublayerNormed: buffers.optional("sublayerNormed")?.slice(0..<n))
    }

    /// The gradient buffers of one layer's backward for `rows` rows.
    func gradients(rows n: Int) -> DecoderLayer.Gradients {
        DecoderLayer.Gradients(
            dNormed: self("dNormed", rows: n), dSublayer: buffers.optional("dSublayer")?.slice(0..<n),
            dQuery: self("dQuery", rows: n), dKey: self("dKey", rows: n), dValue: self("dValue", rows: n),
            dQueryUnnormed: buffers.optional("dQueryUnnormed")?.slice(0..<n),
            dKeyUnnormed: buffers.optional("dKeyUnnormed")?.slice(0..<n),
            dAttention: self("dAttention", rows: n), dHidden: self("dHidden2", rows: n),
            dGate: self("dGate", rows: n), dUp: self("dUp", rows: n),
            probabilities: self("probabilities"), dProbabilities: self("dProbabilities"), dScores: self("dScores"),
            capped: buffers.optional("capped"), dDelta: self("dDelta"), normScratch: self("normScratch"))
    }

    /// The scratch of a layer pass: scores in `probabilities`, the adapters' delta and input buffers.
    func layerScratch(rows n: Int) -> LayerScratch {
        LayerScratch(scores: self("probabilities"), matmul: nil, delta: self("delta"), adapterInput: self("xDrop", rows: n))
    }

    /// Layer l of `weights` with Float32 projections: decoded into the expansion buffers when kept compressed.
    public func layerWeights(_ l: Int, of weights: DecoderWeights) -> LayerWeights {
        expansion?.layer(l, of: weights) ?? weights.layers[l]
    }

    /// Says that the expansion of layer l, changed in place, is what its compactly kept projections now hold (pruning
    /// wrote into it and stored the result back), so the next pass uses it without decoding again.
    public func keepExpansion(layer l: Int, of weights: DecoderWeights) {
        expansion?.keep(layer: l, of: weights)
    }
}

// MARK: - One layer, forward and backward, on the training workspace

extension Decoder {
    /// Layer l's forward over x [B·T, C] (in place), saving its activations in the workspace.
    func trainingLayerForward(_ l: Int, residual x: Tensor, batch: Int, adapters: SparseLoRA?, workspace w: LoRATrainingWorkspace) {
        let n = batch * w.tokens
        w.positions.withUnsafeBufferPointer { positions in
            DecoderLayer.forward(w.layerWeights(l, of: weights), index: l, config: config, layout: weights.rotaryLayout,
                                 rotary: w.rotary.table(forLayer: l), positions: positions.baseAddress!, residual: x,
                                 keys: .windows(batch: batch, tokens: w.tokens), activations: w.activations(layer: l, rows: n),
                                 scratch: w.layerScratch(rows: n), adapters: adapters)
        }
    }

    /// Layer l's backward: dX [B·T, C] at its output becomes the gradient at its input x_in.
    func trainingLayerBackward(_ l: Int, input xIn: Tensor, dX: Tensor, batch: Int, adapters: SparseLoRA?,
                               workspace w: LoRATrainingWorkspace) {
        let n = batch * w.tokens
        w.positions.withUnsafeBufferPointer { positions in
            DecoderLayer.backward(w.layerWeights(l, of: weights), index: l, config: config, layout: weights.rotaryLayout,
                                  rotary: w.rotary.table(forLayer: l), positions: positions.baseAddress!, input: xIn, dX: dX,
                                  batch: batch, tokens: w.tokens, activations: w.activations(layer: l, rows: n),
                                  gradients: w.gradients(rows: n), scratch: w.layerScratch(rows: n), adapters: adapters)
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
        precondition(w.layerInputs.shape[0] == config.layerCount + 1, "decoder: an adapted forward keeps every block boundary")
        let inputs = (0...config.layerCount).map { w.layerInputs[$0].slice(0..<n) }
        embed(tokens, into: inputs[0], tokensPerWindow: w.tokens)
        for l in 0..<config.layerCount {
            if stopIf() { throw .interrupted }
            inputs[l + 1].assign(inputs[l])
            trainingLayerForward(l, residual: inputs[l + 1], batch: batch, adapters: adapters, workspace: w)
        }
        let hidden = w("hidden", rows: n)
        finalNorm(inputs[config.layerCount], into: hidden)
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
                trainingLayerForward(l, residual: residual, batch: batch, adapters: adapters, workspace: w)
            }
            if let taught, objective.hiddenStateWeight > 0 {
                // The hidden-state term of layer l's output x_{l+1} joins dX before layer l's backward.
                addHiddenStateTerm(layer: l, student: inputs[l + 1], teacher: taught.blockOutputs[l], objective: objective,
                                   dX: dX, loss: &loss)
            }
            trainingLayerBackward(l, input: inputs[l], dX: dX, batch: batch, adapters: adapters, workspace: w)
        }
        return loss
    }
}
