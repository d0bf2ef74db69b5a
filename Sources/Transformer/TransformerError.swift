import ModelFormats

/// Errors building or running the decoder, each with a sentence for the user.
public enum TransformerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The weights lack a tensor the configuration needs.
    case missingTensor(role: String)
    /// A tensor's shape is not the one the configuration implies.
    case wrongShape(role: String, shape: [Int], expected: [Int])
    /// The token stream is too short for one evaluation window.
    case streamTooShort(tokens: Int, windowLength: Int)
    /// The caller's stop check answered yes between two layers or batches; the pass was abandoned.
    case interrupted

    public var description: String {
        switch self {
        case .missingTensor(let role):
            return "the decoder needs the tensor \(role), which the weights do not hold; the checkpoint is incomplete."
        case .wrongShape(let role, let shape, let expected):
            return "tensor \(role) has shape \(shape) where the configuration implies \(expected); the checkpoint does not match its config."
        case .interrupted:
            return "the pass was interrupted at the caller's request"
        case .streamTooShort(let tokens, let windowLength):
            return "\(tokens) tokens do not fill one window of \(windowLength); use a longer text or a shorter window."
        }
    }
}
