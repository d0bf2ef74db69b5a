import ModelFormats

/// How a token stream is cut into the windows a model reads, the same for evaluation, calibration
/// and training: non-overlapping runs of text, each after the model's own prefix — the BOS token
/// where its tokenizer adds one (Gemma's metadata asks for it; SmolLM2's does not). A window has
/// `length` positions: the prefix, then `length − prefix.count` stream tokens; the stream's tail
/// after the last full window is not used (as llama.cpp's `llama-perplexity` drops it).
///
/// Shapes: stream [S]; window [T] = prefix [P] + stream[i·(T − P) ..< (i + 1)·(T − P)].
public struct WindowLayout: Sendable, Equatable {
    /// T, positions per window.
    public let length: Int
    /// Tokens every window starts with (empty, or the BOS).
    public let prefix: [Int32]

    public init(length: Int, prefix: [Int32] = []) {
        precondition(length > prefix.count, "window layout: \(length) positions for a prefix of \(prefix.count)")
        self.length = length
        self.prefix = prefix
    }

    /// Windows of `length` positions after `tokenizer`'s own prefix.
    public init(length: Int, tokenizer: Tokenizer) {
        self.init(length: length, prefix: tokenizer.prefixTokenIDs)
    }

    /// Stream tokens per window.
    public var textTokens: Int { length - prefix.count }

    /// Full windows in a stream of `count` tokens.
    public func windowCount(streamLength count: Int) -> Int { count / textTokens }

    /// Window `index` of `stream` [T].
    public func window(_ index: Int, of stream: [Int32]) -> [Int32] {
        precondition(index >= 0 && (index + 1) * textTokens <= stream.count,
                     "window layout: window \(index) of a stream of \(stream.count) tokens")
        return prefix + stream[(index * textTokens)..<((index + 1) * textTokens)]
    }

    /// How the windows begin, for reports: "BOS (id 2) at the start of each window" or "no BOS".
    public var prefixDescription: String {
        prefix.isEmpty ? "no BOS" : "BOS (id \(prefix.map(String.init).joined(separator: ", "))) at the start of each window"
    }
}
