import Kernels
import ModelFormats

/// The rotary tables a decoder's layers use, for positions 0..<`positionCount`: one for the
/// full-attention layers and, when the family gives its sliding layers their own rope base
/// (gemma3's local layers), one for those.
struct RotaryTables {
    let full: RotaryTable
    let sliding: RotaryTable
    private let config: ModelConfig

    init(weights: DecoderWeights, positionCount: Int) {
        config = weights.config
        full = RotaryTable(inverseFrequencies: weights.ropeInverseFrequencies, positionCount: positionCount)
        if config.block.slidingRopeTheta != nil {
            sliding = RotaryTable(inverseFrequencies: config.ropeInverseFrequencies(for: .sliding), positionCount: positionCount)
        } else {
            sliding = full
        }
    }

    /// The table of layer `l`.
    func table(forLayer l: Int) -> RotaryTable {
        config.span(ofLayer: l) == .sliding ? sliding : full
    }
}
