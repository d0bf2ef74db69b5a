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
        var scales: [TensorRole: [UInt16]] = [:]
        embedAll()
        for l in 0..<decoder.config.layerCount {
            let statistics = try inputStatistics(layer: l, hessian: .float64, advance: false, cancellation: cancellation)
            do {
                for (group, stats) in zip(Self.inputGroups, statistics) {
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
