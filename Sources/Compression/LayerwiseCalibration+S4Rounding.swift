import Kernels
import ModelFormats
import Transformer

extension LayerwiseCalibration {
    /// Rounds every projection's stored weights to s4 values block by block (`roundS4WithHessian`), each block's
    /// Hessians taken from the inputs the blocks before produce once rounded (sequential, as `prune` is); the weights
    /// are modified in place. Returns each projection role's s4 scales ([rows · groups] f16 bits) for
    /// `SparseMatrix.encodeS4`.
    public func roundS4Sequentially(dampening: Double = 0.01,
                                    cancellation: Cancellation = .never) throws(CompressionError) -> [TensorRole: [UInt16]] {
        let config = decoder.config
        let groups: [[SparseLoRA.Projection]] = [[.query, .key, .value], [.attentionOutput], [.gate, .up], [.down]]
        var scales: [TensorRole: [UInt16]] = [:]
        embedAll()
        for l in 0..<config.layerCount {
            var statistics: [InputStatistics] = []
            do {
                for group in groups {
                    statistics.append(try InputStatistics(inputs: SparseLoRA.shape(of: group[0], config: config).in, hessian: .float64))
                }
                for (first, count) in chunks {
                    try cancellation.check()
                    let x = scratch.slice(0..<(count * tokens))
                    x.assign(rows(first, count))
                    decoder.runLayer(l, residual: x, batch: count, workspace: workspace)
                    for (g, group) in groups.enumerated() {
                        try statistics[g].accumulate(workspace.projectionInput(group[0], layer: l, rows: count * tokens))
                    }
                }
                for (group, stats) in zip(groups, statistics) {
                    for projection in group {
                        try cancellation.check()
                        let weight = SparseLoRA.weight(decoder.weights.layers[l], projection)
                        scales[.layer(l, projection.layerTensor)] = try roundS4WithHessian(weight, statistics: stats, dampening: dampening)
                    }
                }
            } catch let error as CompressionError {
                throw error
            } catch {
                throw .pruning(layer: l, reason: "s4 rounding: \(error)")
            }
            try runBlock(l, cancellation: cancellation)
        }
        return scales
    }
}
