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
        var moments: [TensorRole: [Float]] = [:]
        embedAll()
        for l in 0..<decoder.config.layerCount {
            let statistics = try inputStatistics(layer: l, hessian: nil, advance: true, cancellation: cancellation)
            for (group, stats) in zip(Self.inputGroups, statistics) {
                let n = Double(max(1, stats.rowCount))
                let mean = stats.columnSumOfSquares.map { Float($0 / n) }
                for projection in group { moments[.layer(l, projection.layerTensor)] = mean }
            }
        }
        return moments
    }
}
