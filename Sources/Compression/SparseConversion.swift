import Kernels
import ModelFormats
import Transformer

/// Writes losad's sparse model file of a model that is already pruned (its projections' zeros are the
/// pruned weights) — or, for speed tests of models nobody pruned, after pruning each projection row
/// by magnitude. No calibration and no recovery: `losad compress` is the way to a good sparse model.
public enum SparseConversion {
    /// Writes `checkpoint`'s sparse model file at `path`: the seven projections of every layer in the
    /// sparse encoding with `values`, every other tensor as the source stores it.
    /// `importances` (`inputSecondMoments`): per projection role, its input columns' second moments, by which
    /// s4 scales weight their error.
    @discardableResult
    public static func write(_ checkpoint: Checkpoint, to path: String, values: SparseValueKind,
                             magnitudeSparsity: Double? = nil,
                             importances: [TensorRole: [Float]] = [:]) throws -> SparseModelWriteResult {
        var weights: [TensorRole: Tensor] = [:]
        var sparse: Set<TensorRole> = []
        for entry in checkpoint.roleEntries {
            guard let role = entry.role, role.isMatrix, case .layer = role else { continue }
            let weight = try checkpoint.tensor(role)
            if let magnitudeSparsity { try pruneMagnitude(weight, sparsity: magnitudeSparsity, pattern: .unstructured) }
            weights[role] = weight
            sparse.insert(role)
        }
        return try SparseModelWriter(source: checkpoint, valueKind: values, importances: importances).write(weights: weights, sparse: sparse, to: path)
    }

    /// The second moment of every projection's input columns (`LayerwiseCalibration.inputSecondMoments`) when
    /// `checkpoint` — as it is, already pruned — reads the calibration windows a `losad compress` job with `settings`
    /// would draw from `text` (after pruning its projections by magnitude, as `write` would, when asked).
    public static func inputSecondMoments(of checkpoint: Checkpoint, text: TextSource, magnitudeSparsity: Double? = nil,
                                          settings: CompressionSettings = CompressionSettings()) throws -> [TensorRole: [Float]] {
        var tensors = try checkpoint.loadWeights()
        if let magnitudeSparsity {
            tensors = tensors.mapValues { $0.copy() }
            for (role, weight) in tensors where role.isMatrix {
                guard case .layer = role else { continue }
                try pruneMagnitude(weight, sparsity: magnitudeSparsity, pattern: .unstructured)
            }
        }
        let weights = try DecoderWeights(config: checkpoint.config, tensors: tensors)
        let windows = try JobTexts.calibrationWindows(text, tokenizer: checkpoint.tokenizer, settings: settings,
                                                      vocabularySize: checkpoint.config.vocabSize)
        return try LayerwiseCalibration(decoder: Decoder(weights: weights), windows: windows).inputSecondMoments()
    }

    /// Writes `checkpoint`'s sparse file with s4 values rounded for the error of each projection's outputs on the
    /// calibration windows of `text` (`LayerwiseCalibration.roundS4Sequentially`, GPTQ with the mask fixed) instead
    /// of weight by weight; after pruning by magnitude first when asked.
    @discardableResult
    public static func writeS4RoundedWithHessian(_ checkpoint: Checkpoint, to path: String, text: TextSource,
                                                 magnitudeSparsity: Double? = nil,
                                                 settings: CompressionSettings = CompressionSettings()) throws -> SparseModelWriteResult {
        let tensors = try checkpoint.loadWeights().mapValues { $0.copy() }
        var sparse: Set<TensorRole> = []
        for (role, weight) in tensors where role.isMatrix {
            guard case .layer = role else { continue }
            if let magnitudeSparsity { try pruneMagnitude(weight, sparsity: magnitudeSparsity, pattern: .unstructured) }
            sparse.insert(role)
        }
        let weights = try DecoderWeights(config: checkpoint.config, tensors: tensors)
        let windows = try JobTexts.calibrationWindows(text, tokenizer: checkpoint.tokenizer, settings: settings,
                                                      vocabularySize: checkpoint.config.vocabSize)
        let scales = try LayerwiseCalibration(decoder: Decoder(weights: weights), windows: windows).roundS4Sequentially()
        let rounded = tensors.filter { sparse.contains($0.key) }
        return try SparseModelWriter(source: checkpoint, valueKind: .s4, s4Scales: scales).write(weights: rounded, sparse: sparse, to: path)
    }
}
