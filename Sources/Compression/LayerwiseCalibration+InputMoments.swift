import Kernels
import ModelFormats
import Transformer

extension LayerwiseCalibration {
    /// The second moment of every input column of every projection, over the calibration tokens, of the model as
    /// it is now: for each projection role, [in] values (1/n) Σ_t x_tj² — Wanda's ‖X_j‖² per token. Projections that
    /// read the same input (q, k, v; gate, up) share one array. One pass through the model, each block run once in
    /// place (the weights do not change between blocks).
    ///
    /// What the s4 encoder weights its error by (`SparseModelWriter.importances`): a column whose input is large
    /// costs more per unit of weight error.
    public func inputSecondMoments(cancellation: Cancellation = .never) throws(CompressionError) -> [TensorRole: [Float]] {
        let config = decoder.config
        let groups: [[SparseLoRA.Projection]] = [[.query, .key, .value], [.attentionOutput], [.gate, .up], [.down]]
        var moments: [TensorRole: [Float]] = [:]
        embedAll()
        for l in 0..<config.layerCount {
            var statistics: [InputStatistics] = []
            do {
                for group in groups {
                    statistics.append(try InputStatistics(inputs: SparseLoRA.shape(of: group[0], config: config).in))
                }
                for (first, count) in chunks {
                    try cancellation.check()
                    decoder.runLayer(l, residual: rows(first, count), batch: count, workspace: workspace)
                    for (g, group) in groups.enumerated() {
                        try statistics[g].accumulate(workspace.projectionInput(group[0], layer: l, rows: count * tokens))
                    }
                }
            } catch let error as CompressionError {
                throw error
            } catch {
                throw .pruning(layer: l, reason: "input statistics: \(error)")
            }
            for (group, stats) in zip(groups, statistics) {
                let n = Double(max(1, stats.rowCount))
                let mean = stats.columnSumOfSquares.map { Float($0 / n) }
                for projection in group { moments[.layer(l, projection.layerTensor)] = mean }
            }
        }
        return moments
    }
}
