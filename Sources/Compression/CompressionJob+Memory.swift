import Foundation
import Kernels
import ModelFormats
import Transformer

/// A job's peak memory, planned before it starts: what lives the whole job, plus the largest of its phases
/// (pruning and the evaluations around it; the recovery loop; the export), each sized by the same functions that
/// size the buffers `run` allocates. The plan also decides what the job keeps and what it recomputes, fastest first:
/// training's activations stored for backward, a whole batch per pass, and LoSA's dense features kept, when the job
/// then fits under the memory limit; else one window per pass (a quarter of the activations at batch 4; the same
/// gradients, measured as fast); else activations recomputed per layer (one more forward per step); else the dense
/// features too (one more dense forward per pruning pass, from the input read in place).
public struct CompressionMemoryPlan: Sendable, Equatable {
    /// The parts of the peak: the whole job's, then the peak phase's, each named.
    public var parts: [Part]
    /// The phase the peak falls in.
    public var peakPhase: String
    /// How training keeps its activations under this plan.
    public var trainingActivations: LoRATrainingWorkspace.ActivationPolicy
    /// Windows of an optimiser batch that go through forward and backward together (the rest of the batch in
    /// further passes, gradients added): the activations kept are one pass's.
    public var trainingWindowsPerPass: Int
    /// How LoSA's reconstruction errors get the dense outputs (`DenseReference`).
    public var denseFeatures: DenseFeatures
    /// How the model being compressed is kept under this plan.
    public var studentWeights: StudentWeights
    /// The limit the plan was made for (nil: none).
    public var limit: Int?

    public enum StudentWeights: String, Sendable, Equatable {
        /// A private Float32 copy of every weight, pruned and merged in place.
        case float32
        /// The projections as the input's matrices read in place, a mask each and the adapters while merged
        /// (`PrunedProjection`), expanded one layer at a time; kept values of their own only after a refit.
        case compact
    }

    public enum DenseFeatures: String, Sendable, Equatable {
        /// Every block's dense output kept from the start (Float16).
        case stored
        /// Recomputed block by block in each pruning pass from the input's weights read in place.
        case recomputed
    }

    public struct Part: Sendable, Equatable {
        public var name: String
        public var bytes: Int
    }

    /// Bytes at the peak.
    public var totalBytes: Int { parts.reduce(0) { $0 + $1.bytes } }

    /// Whether the plan fits its limit.
    public var fits: Bool { limit.map { totalBytes <= $0 } ?? true }
}

extension CompressionJob {
    /// The memory plan of compressing `checkpoint` with `settings` under `limit` bytes (nil: no limit): the first of
    /// `candidates` (fastest first) that fits; the smallest of them when none does (the caller refuses the job then).
    public static func memoryPlan(checkpoint: Checkpoint, settings: CompressionSettings,
                                  limit: Int?) throws -> CompressionMemoryPlan {
        let copied = try teacherCopiedProjectionBytes(checkpoint: checkpoint)
        let compactAllowed = compactStudentRefusal(checkpoint: checkpoint) == nil
        var plans: [CompressionMemoryPlan] = []
        for candidate in candidates(settings: settings) where candidate.student == .float32 || compactAllowed {
            let plan = memoryPlan(checkpoint: checkpoint, settings: settings, activations: candidate.activations,
                                  windowsPerPass: candidate.windowsPerPass, denseFeatures: candidate.dense,
                                  student: candidate.student, copiedProjectionBytes: copied, limit: limit)
            if plan.fits { return plan }
            plans.append(plan)
        }
        return plans.min { $0.totalBytes < $1.totalBytes }!
    }

    /// What the plan may keep and recompute, fastest first: a batch's activations stored for backward with all its
    /// windows in one pass; the same one window per pass; activations recomputed per layer (one more forward per
    /// step); then LoSA's dense features recomputed too (one more dense forward per pruning pass); then the same with
    /// the student kept compactly (a decode of each layer per pass, and where the input allows it) — a whole batch per
    /// pass first, since each pass decodes the model again (the 7B shape trained 13.8× slower per token than the
    /// 1B's Float32 job with one window of 128 tokens per pass).
    static func candidates(settings: CompressionSettings)
        -> [(activations: LoRATrainingWorkspace.ActivationPolicy, windowsPerPass: Int, dense: CompressionMemoryPlan.DenseFeatures,
             student: CompressionMemoryPlan.StudentWeights)] {
        [(.store, settings.batchSize, .stored, .float32), (.store, 1, .stored, .float32), (.recompute, 1, .stored, .float32),
         (.recompute, 1, .recomputed, .float32), (.store, settings.batchSize, .stored, .compact), (.store, 1, .stored, .compact),
         (.recompute, 1, .stored, .compact), (.recompute, 1, .recomputed, .compact)]
    }

    /// The plan with training activations, windows per pass and dense features kept as given; `copiedProjectionBytes`:
    /// the dense model's projections the input stores in a type it cannot read in place (`teacherCopiedProjectionBytes`).
    ///
    /// Measured against peak RSS (VmHWM, which counts the mapped input's pages too) — see README "Memory".
    static func memoryPlan(checkpoint: Checkpoint, settings s: CompressionSettings,
                           activations: LoRATrainingWorkspace.ActivationPolicy, windowsPerPass: Int,
                           denseFeatures: CompressionMemoryPlan.DenseFeatures,
                           student: CompressionMemoryPlan.StudentWeights = .float32,
                           copiedProjectionBytes: Int, limit: Int?) -> CompressionMemoryPlan {
        let c = checkpoint.config
        let parameters = checkpoint.tensors.reduce(0) { $0 + $1.elementCount }
        let projections = FrozenLayerExpansion.floatCount(config: c) * c.layerCount
        let largestProjection = SparseLoRA.largestProjectionCount(config: c)
        // Recovery allocates its adapters, workspace and teacher whatever the number of training windows.
        let training = s.recovery != .none
        let teacher = training && s.objective.needsTeacher
        let recomputesDense = s.recovery == .losa && denseFeatures == .recomputed
        let calibration = LayerwiseCalibration.floatCount(config: c, windows: s.calibrationWindows, tokens: s.calibrationLength,
                                                          chunk: 4) * 4
        // The dense model (teacher, recomputed dense features): the input's projections read in place, decoded one
        // layer at a time into each user's own buffers; Float32 copies of those stored in a type without a decoder here.
        let copied = teacher || recomputesDense ? copiedProjectionBytes : 0
        let expansion = copied < projections * 4 ? FrozenLayerExpansion.floatCount(config: c) * 4 : 0
        typealias Part = CompressionMemoryPlan.Part

        // The whole job: the model, the mapped input's pages, the calibration set.
        var job: [Part]
        switch student {
        case .float32:
            // Loading reads every page of the input.
            job = [Part(name: "weights (Float32)", bytes: parameters * 4), Part(name: "input file pages", bytes: checkpoint.fileSize)]
        case .compact:
            // The rest of the model as Float32 (its pages read once and kept); the projections as the input's blocks, a
            // mask bit each and, after a refit, their kept values (at the least sparse pruning of the job); one layer's
            // pages and one layer's Float32 expansion at a time.
            let matrices = (try? checkpoint.decodableProjections()) ?? [:]
            let stored = matrices.values.reduce(0) { $0 + $1.storedByteCount }
            var compact = [
                Part(name: "weights besides the projections (Float32)", bytes: (parameters - projections) * 4),
                Part(name: "input file pages: all but the projections, and one layer's", bytes: checkpoint.fileSize - stored + stored / c.layerCount),
                Part(name: "projection masks", bytes: (projections + 63) / 64 * 8),
                Part(name: "student: one layer expanded (Float32)", bytes: FrozenLayerExpansion.floatCount(config: c) * 4),
                // Storing a pruned projection back or writing its checkpoint record: its mask and values built anew (the
                // values array grown by doubling) beside the old, a Float32 scratch of it, a panel of ΔW (at most 4 MiB). Without
                // it the demo's quick job under 1.2G planned 1.1235 GiB against a measured 1.1251.
                Part(name: "student: one projection's transients", bytes: largestProjection * 13 + min(largestProjection, 1 << 20) * 4),
            ]
            if s.refitOptions != nil || s.method == .sparseGPT {
                let least = s.recovery == .losa ? min(s.sparsity, SparsitySchedule(target: s.sparsity, iterations: s.iterations).sparsity(iteration: 1))
                    : s.sparsity
                compact.append(Part(name: "projections' refitted values (Float32)",
                                    bytes: Int(Double(projections) * (1 - least) * 4)
                                        + SparseLoRA.Projection.allCases.reduce(0) { $0 + SparseLoRA.shape(of: $1, config: c).out + 1 } * c.layerCount * 8))
            }
            job = compact
        }
        job += [
            Part(name: "calibration buffers", bytes: calibration),
            Part(name: "tokenized text, code, OpenBLAS buffers", bytes: runtimeBytes),
        ]
        if copied > 0 { job.append(Part(name: "dense model: Float32 projections", bytes: copied)) }
        if s.recovery == .losa {
            // Kept from before the loop to its end.
            if recomputesDense {
                job.append(Part(name: "dense features (recomputed each pass)", bytes: calibration + expansion))
            } else {
                job.append(Part(name: "dense features (Float16)",
                                bytes: c.layerCount * s.calibrationWindows * s.calibrationLength * c.hiddenSize * 2))
            }
        }

        // Pruning: the refit's or SparseGPT's matrices for one projection at a time.
        var pruning: [Part] = []
        if s.method == .sparseGPT {
            let widest = max(c.hiddenSize, c.ffnSize, c.headCount * c.headDim)
            pruning.append(Part(name: "SparseGPT Hessian and its factor", bytes: widest * widest * 12))
        }
        if s.refitOptions != nil {
            // A block's four input Gram matrices in Float; for the projection being refitted, H + λI in Float, its copy
            // before pruning, four work buffers and a mask byte per weight.
            let inputs = [c.hiddenSize, c.headCount * c.headDim, c.hiddenSize, c.ffnSize]
            let widest = inputs.max()!, matrix = c.ffnSize * c.hiddenSize
            pruning.append(Part(name: "least-squares refit",
                                bytes: inputs.reduce(0) { $0 + $1 * $1 * 4 } + widest * widest * 4 + matrix * (5 * 4 + 1)))
        }
        // DecoderWorkspace for 4 windows (its buffer list) plus the loss's chunk of logits.
        let n = 4 * s.evaluationLength, hd = c.headCount * c.headDim, kvd = c.kvHeadCount * c.headDim
        let evaluationFloats = n * (2 * c.hiddenSize + 2 * hd + 2 * kvd + 2 * c.ffnSize)
            + c.headCount / c.kvHeadCount * s.evaluationLength * s.evaluationLength + 256 * c.vocabSize
        let evaluation = [Part(name: "evaluation workspace", bytes: evaluationFloats * 4)]

        // Recovery: adapters and optimiser, the training workspace, the teacher; pruning runs between LoSA's epochs.
        var recovery: [Part] = []
        if training {
            let rank = s.recovery == .losa ? s.maximumRank : s.baselineRank
            let arena = SparseLoRA.layout(config: c, maximumRank: rank).last!
            recovery.append(Part(name: "adapters, gradients, AdamW moments", bytes: arena * 4 * 4 + arena))
            recovery.append(Part(name: "training workspace (activations \(activations == .store ? "stored" : "recomputed"), \(windowsPerPass) of \(s.batchSize) windows per pass)",
                                 bytes: LoRATrainingWorkspace.shapes(config: c, batch: windowsPerPass, tokens: s.trainingLength,
                                                                     chunkRows: 128, policy: activations)
                                    .map { $0.1.reduce(1, *) }.reduce(0, +) * 4))
            if teacher {
                recovery.append(Part(name: "distillation teacher: workspace",
                                     bytes: AdapterTraining.teacherWorkspaceFloats(config: c, settings: s, windowsPerPass: windowsPerPass) * 4 + expansion))
            }
            if s.recovery == .losa { recovery += pruning }
        }

        // Export: the sparse writer encodes each projection only when it writes it (`DeferredSparseMatrix`), so it
        // holds the largest one's encoding (at most a byte per weight, plus mask and scales) — and for a fused
        // tensor (phi3's q/k/v, gate/up) its stacked Float32 copy too.
        var export: [Part] = []
        if s.outputs.contains(.sparse) {
            let fused = checkpoint.tensors.filter { !$0.parts.isEmpty }.map(\.elementCount).max() ?? 0
            let encoded = max(largestProjection, fused)
            export.append(Part(name: "sparse file: one projection encoded at a time",
                               bytes: encoded * 9 / 8 + encoded / 32 + fused * 4))
        }
        if student == .compact {
            // Each projection is made in Float32 only when a writer reaches it.
            export.append(Part(name: "export: one projection made at a time (Float32)", bytes: largestProjection * 4))
        }

        func total(_ parts: [Part]) -> Int { parts.reduce(0) { $0 + $1.bytes } }
        let phases: [(String, [Part])] = [
            ("pruning", pruning), ("evaluation", evaluation), ("recovery", recovery), ("export", export),
        ]
        let peak = phases.max { total($0.1) < total($1.1) }!
        // After the job the model is let go and the outputs are read back one at a time: the export loaded as Float32
        // (or, for a compact job, read in place, its pages let go as it is evaluated) with the zeros of both, then
        // the input decoded in place for the decode-speed measurement, which reads every page of it.
        let zeroMasks = Part(name: "zero masks of the model and of its export", bytes: 2 * ((projections + 63) / 64 * 8))
        let reread = student == .float32 ? [Part(name: "export read back (Float32)", bytes: parameters * 4), zeroMasks] : [zeroMasks]
        let decodeMeasurement = [Part(name: "input read in place by the decode measurement", bytes: checkpoint.fileSize)]
        let after = [Part(name: "tokenized text, code, OpenBLAS buffers", bytes: runtimeBytes)] + evaluation
            + (total(reread) > total(decodeMeasurement) ? reread : decodeMeasurement)
        if total(after) > total(job + peak.1) {
            let slack = Part(name: "allocator and transient buffers (\(Int(slackFraction * 100))%)",
                             bytes: Int(Double(total(after)) * slackFraction))
            return CompressionMemoryPlan(parts: after + [slack], peakPhase: "reading the outputs back",
                                         trainingActivations: training ? activations : .store,
                                         trainingWindowsPerPass: training ? windowsPerPass : s.batchSize,
                                         denseFeatures: s.recovery == .losa ? denseFeatures : .stored, studentWeights: student,
                                         limit: limit)
        }
        let sized = job + peak.1
        let slack = Part(name: "allocator and transient buffers (\(Int(slackFraction * 100))%)",
                         bytes: Int(Double(total(sized)) * slackFraction))
        return CompressionMemoryPlan(parts: sized + [slack], peakPhase: peak.0, trainingActivations: training ? activations : .store,
                                     trainingWindowsPerPass: training ? windowsPerPass : s.batchSize,
                                     denseFeatures: s.recovery == .losa ? denseFeatures : .stored, studentWeights: student,
                                     limit: limit)
    }

    /// Resident memory of a job besides its buffers: code, the Swift and Foundation runtimes, tokenized texts and
    /// OpenBLAS's per-thread buffers.
    static let runtimeBytes = 192 << 20

    /// What the parts above do not size one by one — the allocator's retained and fragmented memory, the loss
    /// head's and the kernels' per-call temporaries — as a fraction of them. Without it the plan of the 1B-shaped
    /// job (`make bench-scale`, release, one thread) was 9.74 GiB against a measured peak of 9.92 GiB (1.8% short),
    /// and the demo model's 2.21 GiB against 2.14 GiB.
    static let slackFraction = 0.05
}
