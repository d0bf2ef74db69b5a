import Foundation
import Kernels
import ModelFormats
import Transformer

/// The stages `run` calls besides the LoSA loop: evaluation and the dense-LoRA baseline.
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
                // Matrices read in place (a compact student, the exported files) let their pages go once decoded.
                let result = try decoder.perplexity(of: text.stream, layout: texts.evaluationLayout, batch: 4,
                                                    releasingPages: true, stopIf: cancellation.isCancelled)
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
    func trainBaselineLoRA(_ decoder: Decoder, texts: JobTexts, teacherWeights: DecoderWeights?,
                           summary: inout CompressionReport) throws(CompressionError) {
        let settings = request.settings, config = decoder.config
        let adapters = SparseLoRA(config: config, settings: .init(maximumRank: settings.baselineRank,
                                                                  scaling: Float(settings.loraScaling),
                                                                  dropout: Float(settings.loraDropout), masked: false),
                                  seed: settings.seed)
        adapters.ranks = [Int](repeating: settings.baselineRank, count: config.layerCount)
        let optimizer = AdamW(parameterCount: adapters.parameters.count, settings: .init(weightDecay: settings.weightDecay))
        let training = AdapterTraining(decoder: decoder, adapters: adapters, optimizer: optimizer, settings: settings,
                                       activations: trainingActivations, windowsPerPass: trainingWindowsPerPass,
                                       teacherWeights: teacherWeights, expansion: studentExpansion)
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
                                        trainingSteps: losses.count, trainingWindows: order.count, losses: losses.map(\.total),
                                        lossTerms: settings.objective == .crossEntropy ? nil : losses,
                                        seconds: Date().timeIntervalSince(start)))
    }
}
