import Foundation
import Kernels
import ModelFormats
import Transformer

/// How far a job is: the planned weight of each stage, and the reports `onProgress` hears.
extension CompressionJob {
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
