import Foundation
import Kernels
import ModelFormats
import Transformer

extension CompressionJob {
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
        if s.refitOptions != nil {
            // A block's four input Gram matrices in Float; for the projection being refitted, H + λI in Float, its copy
            // before pruning, four work buffers and a mask byte per weight.
            let inputs = [c.hiddenSize, c.headCount * c.headDim, c.hiddenSize, c.ffnSize]
            let widest = inputs.max()!, matrix = c.ffnSize * c.hiddenSize
            parts.append(("least-squares refit", inputs.reduce(0) { $0 + $1 * $1 * 4 } + widest * widest * 4 + matrix * (5 * 4 + 1)))
        }
        if s.recovery != .none && s.trainingSamples > 0 {
            let rank = s.recovery == .losa ? s.maximumRank : s.baselineRank
            let arena = SparseLoRA.layout(config: c, maximumRank: rank).last!
            parts.append(("adapters, gradients, AdamW moments", arena * 4 * 4 + arena))
            parts.append(("training workspace", AdapterTraining.workspaceFloats(config: c, settings: s) * 4))
            if s.objective.needsTeacher {
                parts.append(("distillation teacher: dense projections", projections * 4))
                parts.append(("distillation teacher: workspace", AdapterTraining.teacherWorkspaceFloats(config: c, settings: s) * 4))
            }
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
