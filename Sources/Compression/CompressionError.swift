import Foundation

/// Why a compression job stopped, in a sentence a user can act on.
public enum CompressionError: Error, Equatable, CustomStringConvertible {
    /// A setting's value is not one it allows; `field` is the setting's name (`JobSettingKey` for a job setting).
    case invalidSetting(field: String, value: String, allowed: String)
    /// The model is not one the engine runs (architecture, shapes), or a file could not be read.
    case unsupportedModel(path: String, reason: String)
    /// A text has too few tokens for what the job needs from it.
    case notEnoughText(what: String, tokens: Int, needed: Int)
    case outputExists(path: String)
    /// A text file or folder could not be read as text.
    case unreadableText(path: String, reason: String)
    /// A checkpoint exists but belongs to another model or other settings, or is damaged.
    case checkpointMismatch(path: String, reason: String)
    /// The exported model lost zeros the job made (verification after export): `found` of `expected` are zero.
    case sparsityMismatch(tensor: String, expected: Int, found: Int)
    /// Training diverged (a non-finite loss or gradient).
    case diverged(iteration: Int, step: Int)
    /// A calibration figure came out not finite (e.g. the model's activations overflow).
    case nonFinite(what: String, iteration: Int)
    /// Pruning refused a layer (e.g. a sparsity the pattern cannot express, or a Hessian that is not positive definite).
    case pruning(layer: Int, reason: String)
    /// The job's memory plan exceeds its limit: refused before anything is loaded.
    case notEnoughMemory(model: String, estimate: Int, limit: Int, parts: String)
    case cancelled

    public var description: String {
        switch self {
        case let .invalidSetting(field, value, allowed):
            return "\(field) = \(value) is not allowed; expected \(allowed)"
        case let .unsupportedModel(path, reason):
            return "\(path): \(reason)"
        case let .notEnoughText(what, tokens, needed):
            return "the \(what) text has \(tokens) tokens, the job needs at least \(needed)"
        case let .unreadableText(path, reason):
            return "cannot read the text \(path): \(reason)"
        case let .outputExists(path):
            return "\(path) already exists; choose another output folder or remove it"
        case let .checkpointMismatch(path, reason):
            return "checkpoint \(path) cannot be resumed: \(reason)"
        case let .sparsityMismatch(tensor, expected, found):
            return "exported tensor \(tensor) keeps only \(found) of the \(expected) zeros the job made"
        case let .diverged(iteration, step):
            return "training diverged (non-finite loss or gradient) at iteration \(iteration), step \(step)"
        case let .nonFinite(what, iteration):
            return "\(what) is not finite in iteration \(iteration): the model's activations overflow on the calibration text"
        case let .pruning(layer, reason):
            return "pruning layer \(layer) failed: \(reason)"
        case let .notEnoughMemory(model, estimate, limit, parts):
            return "compressing \(model) needs an estimated \(Self.gibibytes(estimate)) at its peak (\(parts)), more than "
                + "its memory limit of \(Self.gibibytes(limit)); free memory, raise the limit, or use a smaller profile"
        case .cancelled:
            return "the job was cancelled"
        }
    }

    static func gibibytes(_ bytes: Int) -> String { String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }
}
