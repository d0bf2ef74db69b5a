import Foundation
import Kernels
import Logging
import ModelFormats
import Transformer

/// One compression job, start to finish: load → tokenize → evaluate the dense model → prune-only baseline →
/// recovery (the LoSA loop, the dense-LoRA baseline, or none) → merge and verify → export → evaluate the
/// exported file. `losad compress` runs it in the foreground; the daemon runs exactly the same code.
///
/// The LoSA loop (LOSA.md, "The dynamic loop"), for t = 1 … T:
///
///     s_t = s − s·(1 − t/T)³                              SparsitySchedule
///     W ← W + ΔW                                           merge
///     x_l = argmin Σ x_l·imp_l, mean x = s_t, |x_l − s_t| ≤ δ   RMI: Gram → CKA → importance → LP
///     prune block by block, sequentially; e_l vs dense Y_l
///     W ← W − ΔW  (new masks)                              unmerge
///     r_l from e_l, Σ r_l = (5 + t)·L                       RankAllocation
///     fine-tune the adapters                               AdapterTraining
///
/// After the last iteration W ← W + ΔW, the zeros are counted, the model is exported and re-read from disk.
public final class CompressionJob {
    public struct Request: Sendable {
        public var input: String
        /// The output model's path: a `.gguf` file for GGUF input, a folder for a Hugging Face folder.
        public var output: String
        public var settings: CompressionSettings
        public var texts: TextSources
        /// Where the per-iteration checkpoint lives (nil: none). An existing checkpoint of the same job is resumed.
        public var checkpointDirectory: String?
        /// Where the output will be once the caller has moved it into place (the daemon writes into a hidden
        /// folder and renames it when the job succeeds): the path the report names. Nil: `output`.
        public var publishedOutput: String?
        /// The losad version recorded in the output's metadata and the report (the library cannot see its build).
        public var version = "development"
        /// Bytes the job may use at its peak (nil: no limit). The memory plan keeps training's activations for
        /// backward only when the job then fits, and a job that cannot fit is refused before it loads anything.
        public var memoryLimit: Int?
        /// How LoSA gets its dense features whatever the memory plan says (nil: the plan decides). Both ways give the
        /// same result; recomputing trades a dense forward per pruning pass for the L·n·T·C kept values.
        public var denseFeatures: CompressionMemoryPlan.DenseFeatures?
        /// How many of a batch's windows training runs per pass whatever the memory plan says (nil: the plan
        /// decides; a divisor of the batch size). The gradients are the same; fewer windows keep fewer activations.
        public var trainingWindowsPerPass: Int?
        /// How the model being compressed is kept whatever the memory plan says (nil: the plan decides). Compact
        /// needs an input whose projections are quantised blocks; both give the same model to float rounding.
        public var studentWeights: CompressionMemoryPlan.StudentWeights?

        public init(input: String, output: String, settings: CompressionSettings, texts: TextSources = TextSources(),
                    checkpointDirectory: String? = nil) {
            self.input = input
            self.output = output
            self.settings = settings
            self.texts = texts
            self.checkpointDirectory = checkpointDirectory
        }
    }

    public let request: Request
    let cancellation: Cancellation
    let onProgress: @Sendable (CompressionProgress) -> Void
    let onIteration: @Sendable (CompressionReport.IterationRecord, _ checkpoint: String?) -> Void
    let logger: Logger
    var clock = ProgressClock()
    var stageStart = Date()
    /// How training keeps its activations (from the memory plan made when the job starts).
    var trainingActivations = LoRATrainingWorkspace.ActivationPolicy.store
    /// How many of a batch's windows one training pass runs (from the memory plan).
    var trainingWindowsPerPass = 1
    /// How LoSA's reconstruction errors get the dense outputs (from the memory plan).
    var denseFeatures = CompressionMemoryPlan.DenseFeatures.stored
    /// How the model being compressed is kept (from the memory plan).
    var studentWeights = CompressionMemoryPlan.StudentWeights.float32
    /// The layer buffers a compactly kept student is read through, shared by calibration and training.
    var studentExpansion: FrozenLayerExpansion?
    /// The dense model's Gram matrices (RMI), from the first pass over it: every allocation made while the model is
    /// still dense (the pruned-only baseline's, LoSA's first) uses them instead of running the calibration set again.
    var denseGrams: [GramMatrix]?

    /// `progress` hears every unit of work; `iterationFinished` each finished LoSA iteration with the path of the
    /// checkpoint saved after it (nil when none was saved).
    public init(_ request: Request, cancellation: Cancellation = .never, logger: Logger = Logger(label: "losad.compress"),
                progress: @escaping @Sendable (CompressionProgress) -> Void = { _ in },
                iterationFinished: @escaping @Sendable (CompressionReport.IterationRecord, _ checkpoint: String?) -> Void = { _, _ in }) {
        self.request = request
        self.cancellation = cancellation
        self.onProgress = progress
        self.onIteration = iterationFinished
        self.logger = logger
    }

    /// Runs the job; the report is also written as `report.json` beside the output.
    public func run() throws(CompressionError) -> CompressionReport {
        let settings = request.settings
        try settings.validate()
        if FileManager.default.fileExists(atPath: request.output) { throw .outputExists(path: request.output) }
        let sparsePath = Self.sparseOutputPath(for: request.output)
        if settings.outputs.contains(.sparse) && FileManager.default.fileExists(atPath: sparsePath) {
            throw .outputExists(path: sparsePath)
        }
        planProgress()
        let jobCheckpoint = request.checkpointDirectory.map { JobCheckpoint(directory: $0) }
        // The in-memory model is released before the exported files are loaded for evaluation.
        var (summary, texts, zeros, written) = try compressAndExport(checkpoint: jobCheckpoint)
        ProcessMemory.returnFreedMemory()
        // The interoperable file when the job wrote one, else the sparse file: zeros verified and perplexity on it.
        let primary = written.interop ?? written.sparse!

        // Each file is read, checked and evaluated in turn, and let go before the next (a 7B model's pages are GiBs).
        try verifyAndEvaluate(primary: primary, zeros: zeros, texts: texts, summary: &summary)
        zeros.masks = []
        if let sparse = written.sparse {
            if written.interop != nil {
                // The sparse file as losad's runtime reads it: its own kernels, no Float32 copy.
                let decoder: Decoder
                do { decoder = try Decoder(readingInPlace: Checkpoint.open(sparse)) } catch {
                    throw .unsupportedModel(path: sparse, reason: "the sparse file does not load: \(error)")
                }
                let results = try evaluate(decoder, texts: texts, stage: .evaluate)
                for (i, result) in results.enumerated() { summary.evaluations[i].sparse = result.result.perplexity }
            } else {
                for i in summary.evaluations.indices { summary.evaluations[i].sparse = summary.evaluations[i].final }
            }
            summary.decodeSpeed = try measureDecodeSpeed(input: request.input, sparse: sparse)
        }
        finishStage(.evaluate, in: &summary)

        // A resumed job's wall time counts the runs before the interruption too.
        summary.wallSeconds += clock.elapsed
        summary.peakMemoryBytes = max(summary.peakMemoryBytes, ProcessMemory.peakResidentBytes)
        try writeReport(summary)
        jobCheckpoint?.remove()
        return summary
    }

    /// Reads the exported file back, checks that every weight the job zeroed is zero in it, and evaluates it.
    private func verifyAndEvaluate(primary: String, zeros: ZeroCount, texts: JobTexts,
                                   summary: inout CompressionReport) throws(CompressionError) {
        report(.evaluate, message: "evaluating the exported file")
        let reread: Decoder
        do {
            // A model too large for a Float32 copy (kept compactly throughout) is read in place: evaluations decode
            // panels of rows to Float32 (`compressedMatmul` above 8 tokens), the same values a copy would hold.
            reread = studentWeights == .compact ? try Decoder(readingInPlace: Checkpoint.open(primary))
                : try Decoder(checkpoint: Checkpoint.open(primary))
        } catch {
            throw .unsupportedModel(path: primary, reason: "the exported model does not load: \(error)")
        }
        // Every weight the job zeroed must be zero in the file. A quantised export may zero a few more (values
        // that round to 0 in their block): those are counted, not hidden.
        let rereadZeros = projectionZeros(reread.weights)
        let projections = SparseLoRA.Projection.allCases
        for (index, (made, found)) in zip(zeros.masks, rereadZeros.masks).enumerated() {
            let kept = zip(made, found).reduce(0) { $0 + ($1.0 & ~$1.1).nonzeroBitCount }
            if kept > 0 {
                let made = made.reduce(0) { $0 + $1.nonzeroBitCount }
                throw .sparsityMismatch(tensor: "layer \(index / projections.count) \(projections[index % projections.count])",
                                        expected: made, found: made - kept)
            }
        }
        summary.finalSparsity = .init(zeros: zeros.zeros, total: zeros.total, perLayer: zeros.perLayer,
                                      exportedZeros: rereadZeros.zeros, verified: true)
        let finalResults = try evaluate(reread, texts: texts, stage: .evaluate)
        for (i, result) in finalResults.enumerated() { summary.evaluations[i].final = result.result.perplexity }
    }

    /// The files a job wrote: the interoperable export and the sparse file, each when the settings ask for it.
    struct WrittenOutputs {
        var interop: String?
        var sparse: String?
    }

    /// Everything up to the export: the report so far, the texts, the zeros of the merged model, the files written.
    private func compressAndExport(checkpoint jobCheckpoint: JobCheckpoint?) throws(CompressionError)
        -> (CompressionReport, JobTexts, ZeroCount, WrittenOutputs) {
        let settings = request.settings
        // Load: a private Float32 copy of every weight (pruning and merging write into them), or, kept compactly, the
        // projections as the input's matrices read in place with a mask each.
        report(.load, message: "loading \(request.input)")
        let checkpoint: Checkpoint, weights: DecoderWeights, denseWeights: DecoderWeights?
        let plan: CompressionMemoryPlan
        do {
            checkpoint = try Checkpoint.open(request.input)
            plan = try Self.memoryPlan(checkpoint: checkpoint, settings: settings, limit: request.memoryLimit)
        } catch {
            throw .unsupportedModel(path: request.input, reason: "\(error)")
        }
        if let limit = plan.limit, !plan.fits {
            throw .notEnoughMemory(model: request.input, estimate: plan.totalBytes, limit: limit, parts: plan.parts.map {
                "\($0.name) \(CompressionError.gibibytes($0.bytes))"
            }.joined(separator: ", "))
        }
        trainingActivations = plan.trainingActivations
        if let forced = request.trainingWindowsPerPass, forced < 1 || settings.batchSize % forced != 0 {
            throw .invalidSetting(field: "training_windows_per_pass", value: "\(forced)",
                                  allowed: "a divisor of the batch size \(settings.batchSize)")
        }
        trainingWindowsPerPass = request.trainingWindowsPerPass ?? plan.trainingWindowsPerPass
        denseFeatures = request.denseFeatures ?? plan.denseFeatures
        studentWeights = request.studentWeights ?? plan.studentWeights
        if studentWeights == .compact, let reason = Self.compactStudentRefusal(checkpoint: checkpoint) {
            throw .invalidSetting(field: "student_weights", value: "compact", allowed: "float32 for \(request.input): \(reason)")
        }
        do {
            let tensors: [TensorRole: Tensor]
            (weights, tensors) = try studentWeights == .compact ? Self.compactStudent(checkpoint: checkpoint)
                : Self.float32Student(checkpoint: checkpoint)
            studentExpansion = FrozenLayerExpansion(weights: weights)
            // The dense model read in place: the distillation teacher, and the source of recomputed dense features.
            let needsDense = settings.objective.needsTeacher && settings.recovery != .none
                || settings.recovery == .losa && denseFeatures == .recomputed
            denseWeights = try needsDense ? Self.teacherWeights(checkpoint: checkpoint, tensors: tensors) : nil
        } catch {
            throw .unsupportedModel(path: request.input, reason: "\(error)")
        }
        let decoder = Decoder(weights: weights)
        let config = checkpoint.config
        var summary = CompressionReport(input: .init(
            path: request.input, format: checkpoint.format.rawValue, architecture: config.architecture.rawValue,
            layers: config.layerCount, hiddenSize: config.hiddenSize,
            projectionParameters: weights.layers.reduce(0) { n, layer in
                n + SparseLoRA.Projection.allCases.reduce(0) { $0 + layer.projection($1).rows * layer.projection($1).cols }
            },
            parameters: checkpoint.tensors.reduce(0) { $0 + $1.elementCount },
            fileBytes: checkpoint.fileSize), settings: settings)
        summary.losadVersion = request.version
        summary.memory = .init(plan)
        summary.memory?.trainingWindowsPerPass = trainingWindowsPerPass
        summary.memory?.studentWeights = studentWeights.rawValue
        finishStage(.load, in: &summary)

        report(.tokenize, message: "tokenizing the calibration, training and evaluation text")
        let texts = try JobTexts(sources: request.texts, tokenizer: checkpoint.tokenizer, settings: settings,
                                 vocabularySize: config.vocabSize)
        finishStage(.tokenize, in: &summary)

        let identity = JobCheckpoint.identity(input: request.input, settings: settings)
        var resumed = try jobCheckpoint?.loadState(identity: identity)
        if resumed != nil && settings.recovery != .losa { resumed = nil }

        if let state = resumed {
            summary = state.report
            summary.resumedAfterIteration = state.iteration
            logger.notice("resuming after iteration \(state.iteration) from \(request.checkpointDirectory ?? "")")
        } else {
            // Dense perplexity of every evaluation text.
            summary.evaluations = try evaluate(decoder, texts: texts, stage: .evaluateDense).map {
                .init(text: $0.name, windowLength: settings.evaluationLength, windows: $0.result.windows,
                      predictedTokens: $0.result.predictedTokens, dense: $0.result.perplexity)
            }
            finishStage(.evaluateDense, in: &summary)
        }

        let calibration = LayerwiseCalibration(decoder: decoder, windows: texts.calibrationWindows, expansion: studentExpansion)
        switch settings.recovery {
        case .none, .lora:
            // The pruned-only model is the start of both: prune once to the final sparsity.
            summary.prunedBaseline = try pruneOnce(calibration, sparsity: settings.sparsity, summary: &summary)
            try recordPrunedEvaluation(decoder, texts: texts, summary: &summary)
            if settings.recovery == .lora {
                try trainBaselineLoRA(decoder, texts: texts, teacherWeights: denseWeights, summary: &summary)
            }
        case .losa:
            var storedDense: DenseFeatures?
            if resumed == nil {
                if denseFeatures == .stored {
                    // LoSA's targets and the dense model's layer similarities in one pass, before anything is pruned.
                    report(.denseFeatures, message: "dense features of every block")
                    let pass = try calibration.denseFeaturesAndGrams(cancellation: cancellation)
                    (storedDense, denseGrams) = (pass.features, pass.grams)
                    finishStage(.denseFeatures, in: &summary)
                }
                // Pruned-only baseline; the dense projections are then read back from the input.
                summary.prunedBaseline = try pruneOnce(calibration, sparsity: settings.sparsity, summary: &summary)
                try recordPrunedEvaluation(decoder, texts: texts, summary: &summary)
                do { try restoreProjections(weights, from: checkpoint) } catch {
                    throw .unsupportedModel(path: request.input, reason: "re-reading the dense projections: \(error)")
                }
            }
            try runLoSA(decoder, calibration: calibration, texts: texts, checkpoint: jobCheckpoint, identity: identity,
                        resumed: resumed, denseWeights: denseWeights, storedDense: storedDense, summary: &summary)
        }

        let zeros = projectionZeros(weights)
        var written = WrittenOutputs()
        if settings.outputs.contains(.gguf) {
            report(.export, message: "writing \(request.output)")
            let exported: ExportResult
            do {
                exported = try checkpoint.export(replacing: projectionTensors(weights), as: settings.exportType,
                                                 metadata: exportMetadata(), to: request.output)
            } catch {
                throw .unsupportedModel(path: request.output, reason: "export failed: \(error)")
            }
            summary.output = .init(path: request.publishedOutput ?? exported.path, format: exported.format.rawValue,
                                   bytes: exported.bytesWritten,
                                   projectionType: Set(exported.tensors.filter(\.replaced).map(\.type)).sorted().joined(separator: ", "))
            written.interop = exported.path
        }
        if settings.outputs.contains(.sparse) {
            summary.sparseOutput = try writeSparseOutput(weights, source: checkpoint, calibration: calibration)
            written.sparse = Self.sparseOutputPath(for: request.output)
        }
        summary.peakMemoryBytes = max(summary.peakMemoryBytes, ProcessMemory.peakResidentBytes)
        finishStage(.export, in: &summary)
        return (summary, texts, zeros, written)
    }

    // MARK: - Stages

    private func pruneOnce(_ calibration: LayerwiseCalibration, sparsity: Double,
                           summary: inout CompressionReport) throws(CompressionError) -> [CompressionReport.LayerRecord] {
        let settings = request.settings, layers = calibration.decoder.config.layerCount
        report(.prunedBaseline, message: "pruning to \(Int(sparsity * 100))% in one shot")
        let allocation = try allocate(calibration, sparsity: sparsity, iteration: 0, modelIsDense: true)
        let results = try calibration.prune(sparsities: allocation.sparsities, method: settings.method, pattern: settings.pattern,
                                            dense: nil, reconstruction: settings.refitOptions, cancellation: cancellation) { l in
            self.report(.prunedBaseline, step: l + 1, steps: layers, message: "pruned block \(l + 1) of \(layers)")
        }
        finishStage(.prunedBaseline, in: &summary)
        return results.enumerated().map { l, r in
            .init(layer: l, targetSparsity: r.target, sparsity: r.sparsity, redundancy: allocation.redundancy?[l],
                  importance: allocation.importance?[l], reconstructionError: r.reconstructionError, rank: nil)
        }
    }

    private func recordPrunedEvaluation(_ decoder: Decoder, texts: JobTexts,
                                        summary: inout CompressionReport) throws(CompressionError) {
        for (i, result) in try evaluate(decoder, texts: texts, stage: .evaluatePruned).enumerated() {
            summary.evaluations[i].pruned = result.result.perplexity
        }
        finishStage(.evaluatePruned, in: &summary)
    }

    struct Allocation {
        var sparsities: [Double]
        var redundancy: [Double]?
        var importance: [Double]?
    }

    /// Layer sparsities at `sparsity`: RMI (Gram matrices of the current model's block inputs → CKA → importance →
    /// exact LP) or uniform. `modelIsDense`: the weights are the input's (the Gram matrices of the first such pass
    /// serve every later one: `denseGrams`).
    private func allocate(_ calibration: LayerwiseCalibration, sparsity: Double, iteration: Int,
                          modelIsDense: Bool = false) throws(CompressionError) -> Allocation {
        let layers = calibration.decoder.config.layerCount
        guard request.settings.allocation == .rmi, layers > 1 else {
            return Allocation(sparsities: [Double](repeating: sparsity, count: layers))
        }
        report(.rmi, iteration: iteration, message: "layer similarity (CKA) at \(String(format: "%.3f", sparsity))")
        let grams: [GramMatrix]
        if modelIsDense, let cached = denseGrams {
            grams = cached
        } else {
            grams = try calibration.layerGrams(cancellation: cancellation)
            if modelIsDense { denseGrams = grams }
        }
        let beta = request.settings.method == .sparseGPT ? 100.0 : 1.0
        let redundancy: [Double]
        do { redundancy = LayerSimilarity.redundancy(cka: try LayerSimilarity.ckaMatrix(grams)) } catch {
            throw .nonFinite(what: "layer similarity (\(error))", iteration: iteration)
        }
        let importance = LayerSimilarity.importance(redundancy: redundancy, beta: beta)
        let sparsities = SparsityAllocation.allocate(target: sparsity, importance: importance)
        return Allocation(sparsities: sparsities, redundancy: redundancy, importance: importance)
    }

    private func runLoSA(_ decoder: Decoder, calibration: LayerwiseCalibration, texts: JobTexts,
                         checkpoint: JobCheckpoint?, identity: String, resumed: JobCheckpoint.State?,
                         denseWeights: DecoderWeights?, storedDense: DenseFeatures?,
                         summary: inout CompressionReport) throws(CompressionError) {
        let settings = request.settings, config = decoder.config, layers = config.layerCount
        // The dense model read in place is the teacher when the objective distils.
        let teacherWeights = settings.objective.needsTeacher ? denseWeights : nil
        let schedule = SparsitySchedule(target: settings.sparsity, iterations: settings.iterations)
        let adapters = SparseLoRA(config: config, settings: .init(maximumRank: settings.maximumRank, scaling: Float(settings.loraScaling),
                                                                  dropout: Float(settings.loraDropout)), seed: settings.seed)
        let optimizer = AdamW(parameterCount: adapters.parameters.count, settings: .init(weightDecay: settings.weightDecay))
        // Dense features: made before the pruned-only baseline (`storedDense`), or here on resume, when the weights
        // are still the dense ones loaded from the input. Or, when the memory plan says so, recomputed in every
        // pruning pass from the input read in place.
        let dense: DenseReference
        if denseFeatures == .recomputed, let denseWeights {
            dense = .recomputed(LayerwiseCalibration(decoder: Decoder(weights: denseWeights), windows: calibration.windows,
                                                     chunk: calibration.chunk))
        } else if let storedDense {
            dense = .stored(storedDense)
        } else {
            report(.denseFeatures, message: "dense features of every block")
            dense = .stored(try calibration.denseFeatures(cancellation: cancellation))
            finishStage(.denseFeatures, in: &summary)
        }
        var firstIteration = 1
        if let resumed {
            try checkpoint!.restore(weights: decoder.weights, adapters: adapters, optimizer: optimizer)
            adapters.ranks = resumed.ranks
            firstIteration = resumed.iteration + 1
        } else {
            adapters.ranks = [Int](repeating: 0, count: layers)
        }
        let scratch = Tensor(zeros: [adapters.largestDeltaCount])
        let training = AdapterTraining(decoder: decoder, adapters: adapters, optimizer: optimizer, settings: settings,
                                       activations: trainingActivations, windowsPerPass: trainingWindowsPerPass,
                                       teacherWeights: teacherWeights, expansion: studentExpansion)

        for t in firstIteration...max(firstIteration, settings.iterations) where t <= settings.iterations {
            let iterationStart = Date()
            let target = schedule.sparsity(iteration: t)
            if t > 1 { adapters.merge(into: decoder.weights, scratch: scratch) }
            // Iteration 1 of a job not resumed starts from the dense model (the baseline's pruning undone, no adapters).
            let allocation = try allocate(calibration, sparsity: target, iteration: t, modelIsDense: t == 1 && resumed == nil)
            finishStage(.rmi, in: &summary)
            report(.prune, iteration: t, message: "pruning to \(String(format: "%.3f", target))")
            let pruned = try calibration.prune(sparsities: allocation.sparsities, method: settings.method, pattern: settings.pattern,
                                               dense: dense, reconstruction: settings.refitOptions, cancellation: cancellation) { l in
                self.report(.prune, iteration: t, step: l + 1, steps: layers, message: "pruned block \(l + 1) of \(layers)")
            }
            if t > 1 { adapters.unmerge(from: decoder.weights, scratch: scratch) }
            finishStage(.prune, in: &summary)

            let errors = pruned.map { $0.reconstructionError ?? 0 }
            let meanRank = schedule.meanRank(iteration: t)
            do {
                adapters.ranks = try RankAllocation.allocate(errors: errors, meanRank: meanRank, maximumRank: settings.maximumRank)
            } catch {
                throw .invalidSetting(field: "maximum_rank", value: "\(settings.maximumRank)", allowed: "\(error)")
            }
            finishStage(.ranks, in: &summary)

            let count = settings.trainingSamples(iteration: t)
            let order = AdapterTraining.windows(for: t, count: count, pool: texts.trainingWindows.count, seed: settings.seed)
            report(.train, iteration: t, message: "fine-tuning on \(count) windows")
            let losses = try training.train(iteration: t, windows: order.map { texts.trainingWindows[$0] },
                                            cancellation: cancellation) { step, steps, loss in
                self.report(.train, iteration: t, step: step, steps: steps, loss: loss,
                            message: String(format: "step %d of %d, loss %.4f", step, steps, loss))
            }
            finishStage(.train, in: &summary)

            summary.iterations.append(.init(
                iteration: t, targetSparsity: target,
                meanRank: Double(adapters.ranks.reduce(0, +)) / Double(layers),
                layers: pruned.enumerated().map { l, r in
                    .init(layer: l, targetSparsity: r.target, sparsity: r.sparsity, redundancy: allocation.redundancy?[l],
                          importance: allocation.importance?[l], reconstructionError: r.reconstructionError,
                          rank: adapters.ranks[l])
                },
                trainingSteps: losses.count, trainingWindows: count, losses: losses.map(\.total),
                lossTerms: settings.objective == .crossEntropy ? nil : losses,
                seconds: Date().timeIntervalSince(iterationStart)))
            summary.peakMemoryBytes = max(summary.peakMemoryBytes, ProcessMemory.peakResidentBytes)
            var saved: String? = nil
            if let checkpoint {
                do {
                    // The saved report counts the wall time so far; a resumed run adds its own.
                    var snapshot = summary
                    snapshot.wallSeconds += clock.elapsed
                    try checkpoint.save(state: .init(formatVersion: JobCheckpoint.formatVersion, identity: identity,
                                                     iteration: t, ranks: adapters.ranks, report: snapshot),
                                        weights: decoder.weights, adapters: adapters, optimizer: optimizer)
                    saved = checkpoint.directory
                } catch {
                    logger.warning("could not save the checkpoint after iteration \(t): \(error)")
                }
            }
            onIteration(summary.iterations[summary.iterations.count - 1], saved)
        }
        report(.merge, message: "merging the adapters")
        adapters.merge(into: decoder.weights, scratch: scratch)
        finishStage(.merge, in: &summary)
    }
}
