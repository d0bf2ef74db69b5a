import Foundation
import Kernels
import ModelFormats
import Transformer

/// A job's peak memory, planned before it starts: what lives the whole job, plus the largest of its phases
/// (pruning and the evaluations around it; the recovery loop; the export), each sized by the same functions that
/// size the buffers `run` allocates. The plan also decides how training keeps its activations: stored for backward
/// (fastest) when the job then fits under the memory limit, recomputed per layer when it does not.
public struct CompressionMemoryPlan: Sendable, Equatable {
    /// The parts of the peak: the whole job's, then the peak phase's, each named.
    public var parts: [Part]
    /// The phase the peak falls in.
    public var peakPhase: String
    /// How training keeps its activations under this plan.
    public var trainingActivations: LoRATrainingWorkspace.ActivationPolicy
    /// The limit the plan was made for (nil: none).
    public var limit: Int?

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
    /// The memory plan of compressing `checkpoint` with `settings` under `limit` bytes (nil: no limit): training
    /// stores its activations unless that would exceed the limit and recomputing them would not.
    public static func memoryPlan(checkpoint: Checkpoint, settings: CompressionSettings,
                                  limit: Int?) throws -> CompressionMemoryPlan {
        let stored = try memoryPlan(checkpoint: checkpoint, settings: settings, activations: .store, limit: limit)
        if stored.fits { return stored }
        let recomputed = try memoryPlan(checkpoint: checkpoint, settings: settings, activations: .recompute, limit: limit)
        return recomputed.totalBytes < stored.totalBytes ? recomputed : stored
    }

    /// The plan with training activations kept as `activations`.
    ///
    /// Measured against peak RSS (VmHWM, which counts the mapped input's pages too) — see README "Memory".
    static func memoryPlan(checkpoint: Checkpoint, settings s: CompressionSettings,
                           activations: LoRATrainingWorkspace.ActivationPolicy, limit: Int?) throws -> CompressionMemoryPlan {
        let c = checkpoint.config
        let parameters = checkpoint.tensors.reduce(0) { $0 + $1.elementCount }
        let projections = FrozenLayerExpansion.floatCount(config: c) * c.layerCount
        let training = s.recovery != .none && s.trainingSamples > 0
        typealias Part = CompressionMemoryPlan.Part

        // The whole job: the model, the mapped input's pages (loading reads them all), the calibration set.
        var job: [Part] = [
            Part(name: "weights (Float32)", bytes: parameters * 4),
            Part(name: "input file pages", bytes: checkpoint.fileSize),
            Part(name: "calibration buffers", bytes: LayerwiseCalibration.floatCount(
                config: c, windows: s.calibrationWindows, tokens: s.calibrationLength, chunk: 4) * 4),
            Part(name: "tokenized text, code, OpenBLAS buffers", bytes: runtimeBytes),
        ]
        if s.recovery == .losa {
            // Created before the pruned-only baseline's evaluation finishes and kept to the end of the loop.
            job.append(Part(name: "dense features (Float16)",
                            bytes: c.layerCount * s.calibrationWindows * s.calibrationLength * c.hiddenSize * 2))
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
            recovery.append(Part(name: "training workspace (activations \(activations == .store ? "stored" : "recomputed"))",
                                 bytes: LoRATrainingWorkspace.shapes(config: c, batch: s.batchSize, tokens: s.trainingLength,
                                                                     chunkRows: 128, policy: activations)
                                    .map { $0.1.reduce(1, *) }.reduce(0, +) * 4))
            if s.objective.needsTeacher {
                let copied = try teacherCopiedProjectionBytes(checkpoint: checkpoint)
                if copied > 0 { recovery.append(Part(name: "distillation teacher: Float32 projections", bytes: copied)) }
                let expanded = copied < projections * 4 ? FrozenLayerExpansion.floatCount(config: c) * 4 : 0
                recovery.append(Part(name: "distillation teacher: workspace",
                                     bytes: AdapterTraining.teacherWorkspaceFloats(config: c, settings: s) * 4 + expanded))
            }
            if s.recovery == .losa { recovery += pruning }
        }

        // Export: the sparse writer holds every encoded projection (at most a byte per weight plus mask and scales).
        var export: [Part] = []
        if s.outputs.contains(.sparse) {
            export.append(Part(name: "sparse file being written", bytes: projections * 9 / 8 + projections / 32))
        }

        func total(_ parts: [Part]) -> Int { parts.reduce(0) { $0 + $1.bytes } }
        let phases: [(String, [Part])] = [
            ("pruning", pruning), ("evaluation", evaluation), ("recovery", recovery), ("export", export),
        ]
        let peak = phases.max { total($0.1) < total($1.1) }!
        return CompressionMemoryPlan(parts: job + peak.1, peakPhase: peak.0,
                                     trainingActivations: training ? activations : .store, limit: limit)
    }

    /// Resident memory of a job besides its buffers: code, the Swift and Foundation runtimes, tokenized texts and
    /// OpenBLAS's per-thread buffers.
    static let runtimeBytes = 192 << 20
}
