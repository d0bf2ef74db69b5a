import Kernels

/// Errors of weight pruning, each with a sentence for the user.
public enum PruningError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A pruning method name that is not known.
    case unknownMethod(String)
    /// Wanda or SparseGPT was called without input statistics.
    case missingStatistics(method: String)
    /// A sparsity pattern text that is neither "unstructured" nor "N:M".
    case unknownPattern(String)
    /// An N:M pattern whose numbers make no sense (N must be in 1...M, M in 1...128).
    case invalidGroup(keep: Int, groupSize: Int)
    /// A sparsity outside [0, 1] or not a number.
    case invalidSparsity(Double)
    /// A weight that is not a matrix [out, in].
    case weightNotMatrix(shape: [Int])
    /// An N:M pattern on a row length that is not a multiple of M.
    case rowNotDivisible(inputs: Int, groupSize: Int)
    /// Statistics gathered for a different input width than the weight has.
    case statisticsMismatch(weightInputs: Int, statisticsInputs: Int)
    /// A calibration batch whose rows are not `expected` wide.
    case batchMismatch(shape: [Int], expected: Int)
    /// Statistics that have seen no calibration rows.
    case noCalibrationRows
    /// SparseGPT was asked for but the statistics were gathered without the Hessian.
    case hessianNotCollected
    /// An input width outside what the statistics accept.
    case invalidInputs(Int, limit: Int)
    /// A non-finite value (NaN or infinity) at `row`, `column` of the named tensor.
    case nonFinite(what: String, row: Int, column: Int)
    /// SparseGPT options out of range.
    case invalidOptions(String)
    /// The numeric core failed (a Hessian that is not positive definite, say).
    case numerics(KernelsError)

    public var description: String {
        switch self {
        case .unknownMethod(let text):
            return "pruning method '\(text)' is not known; use 'magnitude', 'wanda' or 'sparsegpt'."
        case .missingStatistics(let method):
            return "\(method) pruning needs input statistics from calibration data, and none were given."
        case .unknownPattern(let text):
            return "sparsity pattern '\(text)' is not known; use 'unstructured' or N:M such as '2:4' or '4:8'."
        case .invalidGroup(let keep, let size):
            return "sparsity pattern \(keep):\(size) is invalid; N:M keeps N of every M inputs, with 1 ≤ N ≤ M ≤ 128."
        case .invalidSparsity(let value):
            return "sparsity \(value) is outside [0, 1]."
        case .weightNotMatrix(let shape):
            return "pruning needs a weight matrix [out, in], not shape \(shape)."
        case .rowNotDivisible(let inputs, let size):
            return "an N:M pattern with M = \(size) needs rows whose length is a multiple of \(size); this weight has \(inputs) inputs."
        case .statisticsMismatch(let weightInputs, let statisticsInputs):
            return "input statistics cover \(statisticsInputs) inputs but the weight has \(weightInputs)."
        case .batchMismatch(let shape, let expected):
            return "calibration batch of shape \(shape) does not have rows of \(expected) inputs."
        case .noCalibrationRows:
            return "input statistics have seen no calibration rows; run calibration data through the layer first."
        case .hessianNotCollected:
            return "SparseGPT needs the Hessian XᵀX, but these input statistics were gathered without it."
        case .invalidInputs(let inputs, let limit):
            return "input statistics for \(inputs) inputs are not possible (1 to \(limit))."
        case .nonFinite(let what, let row, let column):
            return "\(what) has a non-finite value at row \(row), column \(column)."
        case .invalidOptions(let detail):
            return "SparseGPT options are invalid: \(detail)."
        case .numerics(let error):
            return "pruning failed in the numeric core: \(error)"
        }
    }
}
