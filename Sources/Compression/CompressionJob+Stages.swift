import Foundation
import Kernels
import ModelFormats
import Transformer

extension CompressionJob {
    // MARK: - Evaluation

    /// Perplexity of every evaluation text (LOSA.md "Evaluation"), at most `evaluationWindows` windows each.
    func evaluate(_ decoder: Decoder, texts: JobTexts,
                  stage: CompressionStage) throws(CompressionError) -> [(name: String, result: PerplexityResult)] {
        let settings = request.settings
        var results: [(String, PerplexityResult)] = []
        for (i, text) in texts.evaluation.enumerated() {
            try cancellation.check()
            report(stage, step: i, steps: texts.evaluation.count, message: "perplexity of \(text.name)")
            do {
                let result = try decoder.perplexity(of: text.stream, windowLength: settings.evaluationLength, batch: 4,
                                                    stopIf: cancellation.isCancelled)
                results.append((text.name, result))
            } catch TransformerError.interrupted {
                throw .cancelled
            } catch {
                throw .notEnoughText(what: "evaluation (\(text.name))", tokens: text.stream.count, needed: settings.evaluationLength)
            }
        }
        return results
    }

    // MARK: - The LoRA baseline

    /// Dense LoRA of rank `baselineRank` on the pruned model with the whole training budget at once, merged with
    /// re-masking (only nonzero weights receive ΔW, so the sparsity stays exact).
    func trainBaselineLoRA(_ decoder: Decoder, texts: JobTexts, summary: inout CompressionReport) throws(CompressionError) {
        let settings = request.settings, config = decoder.config
        let adapters = SparseLoRA(config: config, settings: .init(maximumRank: settings.baselineRank,
                                                                  scaling: Float(settings.loraScaling),
                                                                  dropout: Float(settings.loraDropout), masked: false),
                                  seed: settings.seed)
        adapters.ranks = [Int](repeating: settings.baselineRank, count: config.layerCount)
        let optimizer = AdamW(parameterCount: adapters.parameters.count, settings: .init(weightDecay: settings.weightDecay))
        let training = AdapterTraining(decoder: decoder, adapters: adapters, optimizer: optimizer, settings: settings)
        let start = Date()
        let order = AdapterTraining.windows(for: 1, count: settings.trainingSamples, pool: texts.trainingWindows.count,
                                            seed: settings.seed)
        report(.train, iteration: 1, message: "fine-tuning dense LoRA on \(order.count) windows")
        let losses = try training.train(iteration: 1, windows: order.map { texts.trainingWindows[$0] },
                                        cancellation: cancellation) { step, steps, loss in
            self.report(.train, iteration: 1, step: step, steps: steps, loss: loss,
                        message: String(format: "step %d of %d, loss %.4f", step, steps, loss))
        }
        finishStage(.train, in: &summary)
        report(.merge, message: "merging and re-masking the adapters")
        adapters.merge(into: decoder.weights, scratch: Tensor(zeros: [adapters.largestDeltaCount]))
        finishStage(.merge, in: &summary)
        summary.iterations.append(.init(iteration: 1, targetSparsity: settings.sparsity, meanRank: Double(settings.baselineRank),
                                        layers: summary.prunedBaseline.map { var r = $0; r.rank = settings.baselineRank; return r },
                                        trainingSteps: losses.count, trainingWindows: order.count, losses: losses,
                                        seconds: Date().timeIntervalSince(start)))
    }

    // MARK: - Weights

    func snapshotProjections(_ weights: DecoderWeights) -> [Tensor] {
        weights.layers.flatMap { layer in SparseLoRA.Projection.allCases.map { SparseLoRA.weight(layer, $0).copy() } }
    }

    func restoreProjections(_ weights: DecoderWeights, from snapshot: [Tensor]) {
        let targets = weights.layers.flatMap { layer in SparseLoRA.Projection.allCases.map { SparseLoRA.weight(layer, $0) } }
        for (target, saved) in zip(targets, snapshot) { target.assign(saved) }
    }

    /// The seven projections of every layer by tensor role, for export.
    func projectionTensors(_ weights: DecoderWeights) -> [TensorRole: Tensor] {
        var tensors: [TensorRole: Tensor] = [:]
        for (l, layer) in weights.layers.enumerated() {
            for p in SparseLoRA.Projection.allCases { tensors[.layer(l, p.layerTensor)] = SparseLoRA.weight(layer, p) }
        }
        return tensors
    }

    struct ZeroCount {
        var zeros = 0
        var total = 0
        var perLayer: [Double] = []
        /// The zero positions of every projection (layer-major, projections in order), one bit per weight.
        var masks: [[UInt64]] = []
    }

    func projectionZeros(_ weights: DecoderWeights) -> ZeroCount {
        var count = ZeroCount()
        for layer in weights.layers {
            var layerZeros = 0, size = 0
            for p in SparseLoRA.Projection.allCases {
                let w = SparseLoRA.weight(layer, p)
                var bits = [UInt64](repeating: 0, count: (w.count + 63) / 64)
                for i in 0..<w.count where w.pointer[i] == 0 {
                    bits[i >> 6] |= 1 << UInt64(i & 63)
                    layerZeros += 1
                }
                count.masks.append(bits)
                size += w.count
            }
            count.zeros += layerZeros
            count.total += size
            count.perLayer.append(Double(layerZeros) / Double(size))
        }
        return count
    }

    /// `losa.*` keys recorded in the exported file: how it was made.
    func exportMetadata() -> GGUFMetadata {
        let s = request.settings
        return GGUFMetadata([("losa.sparsity", .string(String(s.sparsity))), ("losa.method", .string(s.method.rawValue)),
                             ("losa.pattern", .string(s.pattern.description)), ("losa.allocation", .string(s.allocation.rawValue)),
                             ("losa.recovery", .string(s.recovery.rawValue)), ("losa.profile", .string(s.profile.rawValue)),
                             ("losa.version", .string(request.version)),
                             ("losa.source", .string((request.input as NSString).lastPathComponent))])
    }

    /// report.json beside the output model, written durably (`AtomicOutputFile`).
    func writeReport(_ summary: CompressionReport) throws(CompressionError) {
        let path = CompressionJob.reportPath(forOutput: request.output)
        do {
            try AtomicOutputFile.write([UInt8](try summary.json()), to: path, replacingExisting: true)
        } catch {
            throw .unsupportedModel(path: path, reason: "cannot write the report: \(error)")
        }
    }

    /// Where the report of a job writing `output` goes: `report.json` in the output's folder.
    public static func reportPath(forOutput output: String) -> String {
        ((output as NSString).deletingLastPathComponent as NSString).appendingPathComponent("report.json")
    }

    // MARK: - Progress

    func planProgress() {
        let s = request.settings
        clock.plan(CompressionStage.load.rawValue, weight: 1)
        clock.plan(CompressionStage.evaluateDense.rawValue, weight: 3)
        clock.plan(CompressionStage.prunedBaseline.rawValue, weight: 3)
        clock.plan(CompressionStage.evaluatePruned.rawValue, weight: 3)
        if s.recovery == .losa {
            clock.plan(CompressionStage.denseFeatures.rawValue, weight: 1)
            for t in 1...s.iterations {
                clock.plan("prune.\(t)", weight: 4)
                clock.plan("train.\(t)", weight: Double(s.trainingSamples(iteration: t)) * Double(s.trainingLength) / 2000)
            }
        } else if s.recovery == .lora {
            clock.plan("train.1", weight: Double(s.trainingSamples) * Double(s.trainingLength) / 2000)
        }
        clock.plan(CompressionStage.export.rawValue, weight: 1)
        clock.plan(CompressionStage.evaluate.rawValue, weight: 3)
    }

    func report(_ stage: CompressionStage, iteration: Int = 0, step: Int = 0, steps: Int = 0, loss: Double? = nil,
                message: String) {
        let key: String
        switch stage {
        case .rmi, .prune, .ranks: key = "prune.\(iteration)"
        case .train: key = "train.\(iteration)"
        default: key = stage.rawValue
        }
        if steps > 0 { clock.mark(key, fraction: Double(step) / Double(steps)) }
        onProgress(CompressionProgress(stage: stage, iteration: iteration,
                                       iterations: request.settings.recovery == .losa ? request.settings.iterations : 0,
                                       step: step, steps: steps, loss: loss, fraction: clock.fraction,
                                       elapsed: clock.elapsed, remaining: clock.remaining, message: message))
    }

    func finishStage(_ stage: CompressionStage, in summary: inout CompressionReport) {
        let now = Date()
        summary.stageSeconds[stage.rawValue, default: 0] += now.timeIntervalSince(stageStart)
        stageStart = now
        switch stage {
        case .rmi, .prune, .ranks, .train: break
        default: clock.mark(stage.rawValue, fraction: 1)
        }
    }
}

extension SparseLoRA.Projection {
    /// The tensor role of this projection in a layer.
    var layerTensor: TensorRole.LayerTensor {
        switch self {
        case .query: return .query
        case .key: return .key
        case .value: return .value
        case .attentionOutput: return .attentionOutput
        case .gate: return .gate
        case .up: return .up
        case .down: return .down
        }
    }
}

// MARK: - Naming and sizing a job

extension CompressionJob {
    /// `<input stem>-<recovery>-<percent>[-<N>of<M>]`, with `.gguf` for a GGUF input (a folder name otherwise).
    public static func outputName(input: String, settings: CompressionSettings) -> String {
        let name = ((input as NSString).standardizingPath as NSString).lastPathComponent
        let isGGUF = name.lowercased().hasSuffix(".gguf")
        let stem = isGGUF ? String(name.dropLast(5)) : name
        let pattern = settings.pattern == .unstructured ? "" : "-" + settings.pattern.description.replacingOccurrences(of: ":", with: "of")
        let tag = "\(stem)-\(settings.recovery.rawValue)-\(Int((settings.sparsity * 100).rounded()))\(pattern)"
        return isGGUF ? tag + ".gguf" : tag
    }

    /// The job's peak memory, part by part: the buffers `run` allocates, sized by the same functions (parts that
    /// never coexist are still summed, so the estimate errs high). The demo model, quick profile, LoSA at 50%:
    /// estimated 2.79 GiB where 2.29–2.39 GiB peak RSS was measured.
    public static func memoryEstimate(checkpoint: Checkpoint, settings s: CompressionSettings) -> [(name: String, bytes: Int)] {
        let c = checkpoint.config
        let parameters = checkpoint.tensors.reduce(0) { $0 + $1.elementCount }
        let projections = SparseLoRA.Projection.allCases.reduce(0) { n, p in
            let shape = SparseLoRA.shape(of: p, config: c)
            return n + shape.out * shape.in
        } * c.layerCount
        var parts: [(String, Int)] = [("weights (Float32)", parameters * 4)]
        if s.recovery == .losa {
            parts.append(("dense projections kept for the pruned-only baseline", projections * 4))
            parts.append(("dense features (Float16)", c.layerCount * s.calibrationWindows * s.calibrationLength * c.hiddenSize * 2))
        }
        parts.append(("calibration buffers", LayerwiseCalibration.floatCount(config: c, windows: s.calibrationWindows,
                                                                            tokens: s.calibrationLength, chunk: 4) * 4))
        if s.method == .sparseGPT {
            let widest = max(c.hiddenSize, c.ffnSize, c.headCount * c.headDim)
            parts.append(("SparseGPT Hessian and its factor", widest * widest * 12))
        }
        if s.recovery != .none && s.trainingSamples > 0 {
            let rank = s.recovery == .losa ? s.maximumRank : s.baselineRank
            let arena = SparseLoRA.layout(config: c, maximumRank: rank).last!
            parts.append(("adapters, gradients, AdamW moments", arena * 4 * 4 + arena))
            parts.append(("training workspace", AdapterTraining.workspaceFloats(config: c, settings: s) * 4))
        }
        // DecoderWorkspace for 4 windows (its buffer list) plus the loss's chunk of logits.
        let n = 4 * s.evaluationLength, hd = c.headCount * c.headDim, kvd = c.kvHeadCount * c.headDim
        let evaluation = n * (2 * c.hiddenSize + 2 * hd + 2 * kvd + 2 * c.ffnSize)
            + c.headCount / c.kvHeadCount * s.evaluationLength * s.evaluationLength + 256 * c.vocabSize
        parts.append(("evaluation workspace", evaluation * 4))
        if s.outputs.contains(.sparse) {
            // The writer holds every encoded projection (at most a byte per weight plus mask and scales) until it writes.
            parts.append(("sparse file being written", projections * 9 / 8 + projections / 32))
        }
        parts.append(("tokenized text, code, OpenBLAS buffers", 256 << 20))
        return parts
    }
}
