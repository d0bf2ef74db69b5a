import Foundation
import Kernels
import ModelFormats
import Transformer

/// Fine-tuning of the adapters (LOSA.md step 7) on the job's objective (next-token cross-entropy, or with
/// distillation from the dense `teacher`: `TrainingObjective`): the base weights frozen,
/// AdamW with decoupled weight decay, linear warm-up then linear decay per iteration, gradient-norm
/// clipping, gradient accumulation, adapter-input dropout — all seeded, so a run resumed from a checkpoint
/// repeats the uninterrupted one exactly.
///
/// Shapes: windows [W][T + 1] (tokens and their next-token targets); a batch [B][T].
final class AdapterTraining {
    let decoder: Decoder
    let adapters: SparseLoRA
    let optimizer: AdamW
    let settings: CompressionSettings
    let workspace: LoRATrainingWorkspace
    /// The dense model run alongside when the objective distils from it.
    let teacher: DistillationTeacher?
    /// Windows run through forward and backward together; an optimiser batch is `settings.batchSize / windowsPerPass`
    /// passes whose gradients add up (the workspace and the teacher hold one pass's activations).
    let windowsPerPass: Int
    /// 1 where the current ranks make a parameter trainable (inactive rank components stay frozen).
    private var updateMask: [UInt8]

    /// `activations`: what forward keeps for backward; `windowsPerPass`: how many of a batch's windows one pass runs
    /// (a divisor of the batch size; both the job's memory plan decides); `teacherWeights`: the dense model's
    /// weights, needed when the settings' objective distils from it; `expansion`: the student's layer buffers when it
    /// is kept compactly, shared with calibration.
    init(decoder: Decoder, adapters: SparseLoRA, optimizer: AdamW, settings: CompressionSettings,
         activations: LoRATrainingWorkspace.ActivationPolicy = .store, windowsPerPass: Int? = nil,
         teacherWeights: DecoderWeights? = nil, expansion: FrozenLayerExpansion? = nil) {
        precondition(!settings.objective.needsTeacher || teacherWeights != nil, "adapter training: the objective needs the dense weights")
        let windowsPerPass = windowsPerPass ?? settings.batchSize
        precondition(windowsPerPass >= 1 && settings.batchSize % windowsPerPass == 0,
                     "adapter training: \(windowsPerPass) windows per pass do not divide batches of \(settings.batchSize)")
        self.decoder = decoder
        self.adapters = adapters
        self.optimizer = optimizer
        self.settings = settings
        self.windowsPerPass = windowsPerPass
        workspace = LoRATrainingWorkspace(weights: decoder.weights, batch: windowsPerPass,
                                          tokens: settings.trainingLength, policy: activations, expansion: expansion)
        updateMask = [UInt8](repeating: 0, count: adapters.parameters.count)
        teacher = settings.objective.needsTeacher
            ? DistillationTeacher(weights: teacherWeights!, batch: windowsPerPass, tokens: settings.trainingLength,
                                  keepsBlockOutputs: settings.objective.hiddenStateWeight > 0) : nil
    }

    /// The windows iteration t trains on: `count` of the pool in an order drawn from (seed, t), cycling
    /// through fresh permutations when the pool is smaller than `count`.
    static func windows(for iteration: Int, count: Int, pool: Int, seed: UInt64) -> [Int] {
        guard pool > 0 else { return [] }
        var generator = RandomGenerator(seed: seed, stream: 0x7472_6169_6E00 &+ UInt64(iteration))
        var chosen: [Int] = []
        while chosen.count < count {
            var order = Array(0..<pool)
            for i in stride(from: pool - 1, to: 0, by: -1) {
                order.swapAt(i, Int(generator.next() % UInt64(i + 1)))
            }
            chosen += order.prefix(count - chosen.count)
        }
        return chosen
    }

    /// The floats of the teacher's workspace for these settings and passes of `windowsPerPass` windows (0 when the
    /// objective needs no teacher).
    static func teacherWorkspaceFloats(config: ModelConfig, settings: CompressionSettings, windowsPerPass: Int) -> Int {
        settings.objective.needsTeacher
            ? DistillationTeacher.workspaceFloats(config: config, batch: windowsPerPass, tokens: settings.trainingLength,
                                                  keepsBlockOutputs: settings.objective.hiddenStateWeight > 0) : 0
    }

    /// Trains on `windows` (each T + 1 tokens) for one iteration; returns the mean loss of every optimiser step,
    /// split by term.
    func train(iteration: Int, windows: [[Int32]], cancellation: Cancellation,
               progress: (_ step: Int, _ steps: Int, _ loss: Double) -> Void) throws(CompressionError) -> [TrainingLoss] {
        let perStep = settings.batchSize * settings.gradientAccumulation
        let steps = windows.count / perStep
        guard steps > 0 else { return [] }
        let passesPerBatch = settings.batchSize / windowsPerPass
        adapters.fillUpdateMask(&updateMask)
        adapters.training = true
        let schedule = LearningRateSchedule(peak: settings.learningRate, totalSteps: steps,
                                            warmupFraction: settings.warmupFraction)
        var losses: [TrainingLoss] = []
        for step in 0..<steps {
            try cancellation.check()
            adapters.zeroGradients()
            var loss = TrainingLoss.zero
            for micro in 0..<settings.gradientAccumulation {
                let first = (step * settings.gradientAccumulation + micro) * settings.batchSize
                // A fresh dropout mask per batch, derived from the job seed and the batch's coordinates; a pass
                // draws its rows' part of it, so splitting the batch changes no mask.
                adapters.dropoutSeed = settings.seed &* 0x9E37_79B9_7F4A_7C15
                    &+ UInt64(iteration) << 40 &+ UInt64(step) << 12 &+ UInt64(micro)
                for pass in 0..<passesPerBatch {
                    let windowsOfPass = windows[(first + pass * windowsPerPass)..<(first + (pass + 1) * windowsPerPass)]
                    adapters.dropoutRowOffset = pass * windowsPerPass * settings.trainingLength
                    do {
                        loss = loss + (try decoder.adapterGradients(tokens: windowsOfPass.map { Array($0.dropLast()) },
                                                                    targets: windowsOfPass.map { Array($0.dropFirst()) },
                                                                    adapters: adapters, workspace: workspace,
                                                                    objective: settings.objective, teacher: teacher,
                                                                    stopIf: cancellation.isCancelled))
                    } catch {
                        // Only the stop check interrupts a step; the step's partial gradients are dropped.
                        throw .cancelled
                    }
                }
            }
            // Each pass's loss and gradients are means over its windows' tokens: the step's are their mean.
            let passes = settings.gradientAccumulation * passesPerBatch
            loss = loss.divided(by: Double(passes))
            if passes > 1 {
                let scale = 1 / Float(passes), g = adapters.gradients.base
                for i in 0..<adapters.gradients.count { g[i] *= scale }
            }
            let norm = GradientClipping.clip(adapters.gradients, maximumNorm: settings.gradientClip)
            guard loss.total.isFinite && norm.isFinite else { throw .diverged(iteration: iteration, step: step) }
            optimizer.update(parameters: adapters.parameters, gradients: adapters.gradients,
                             learningRate: schedule.rate(step: step), mask: updateMask)
            losses.append(loss)
            progress(step + 1, steps, loss.total)
        }
        return losses
    }
}
