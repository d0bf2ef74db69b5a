/// A token matched whole in the input before any other processing: chat
/// markers such as `<|im_start|>`, BOS/EOS texts, user-defined tokens.
struct AddedToken: Sendable {
    let id: Int32
    let content: [UInt8]
    /// Whitespace just before the token belongs to it (tokenizer.json `lstrip`).
    var absorbsWhitespaceBefore = false
    /// Whitespace just after the token belongs to it (tokenizer.json `rstrip`).
    var absorbsWhitespaceAfter = false
}

/// A stretch of the input: text for the model, or one added token.
enum TextSegment: Equatable {
    case text(Range<Int>)
    case token(Int32)
}

/// Finds added tokens in UTF-8 text, leftmost first and longest at a position
/// (Hugging Face tokenizers' AddedVocabulary; llama.cpp's tokenizer_st_partition
/// agrees except where two special tokens overlap).
struct AddedTokenMatcher: Sendable {
    let tokens: [AddedToken]
    /// Indices into `tokens` by first byte, longest content first.
    private let byFirstByte: [[Int]]

    init(_ tokens: [AddedToken]) {
        let usable = tokens.filter { !$0.content.isEmpty }
        var byFirstByte = [[Int]](repeating: [], count: 256)
        for (index, token) in usable.enumerated() { byFirstByte[Int(token.content[0])].append(index) }
        for byte in 0..<256 {
            byFirstByte[byte].sort { usable[$0].content.count > usable[$1].content.count }
        }
        self.tokens = usable
        self.byFirstByte = byFirstByte
    }

    /// The input cut into text and added tokens; whitespace absorbed by a token is in no segment.
    func segments(of text: [UInt8]) -> [TextSegment] {
        guard !tokens.isEmpty else { return text.isEmpty ? [] : [.text(0..<text.count)] }
        var segments: [TextSegment] = []
        var textStart = 0
        var index = 0
        while index < text.count {
            guard let token = longestMatch(in: text, at: index) else {
                index += 1
                continue
            }
            var matchStart = index
            var matchEnd = index + token.content.count
            if token.absorbsWhitespaceBefore {
                while matchStart > textStart, let previous = Self.whitespaceBefore(matchStart, in: text) { matchStart = previous }
            }
            if token.absorbsWhitespaceAfter {
                while let following = Self.whitespaceAfter(matchEnd, in: text) { matchEnd = following }
            }
            if textStart < matchStart { segments.append(.text(textStart..<matchStart)) }
            segments.append(.token(token.id))
            index = matchEnd
            textStart = matchEnd
        }
        if textStart < text.count { segments.append(.text(textStart..<text.count)) }
        return segments
    }

    private func longestMatch(in text: [UInt8], at index: Int) -> AddedToken? {
        let candidates = byFirstByte[Int(text[index])]
        if candidates.isEmpty { return nil }
        let remaining = text.count - index
        return text.withUnsafeBufferPointer { buffer in
            for candidate in candidates {
                let content = tokens[candidate].content
                guard content.count <= remaining else { continue }
                var equal = true
                for k in 1..<content.count where buffer[index + k] != content[k] {
                    equal = false
                    break
                }
                if equal { return tokens[candidate] }
            }
            return nil
        }
    }

    /// Start of the whitespace character that ends just before `end`, if it is one.
    private static func whitespaceBefore(_ end: Int, in text: [UInt8]) -> Int? {
        var start = end - 1
        while start > 0, text[start] & 0xC0 == 0x80 { start -= 1 }
        return isWhitespace(text, start, end) ? start : nil
    }

    /// End of the whitespace character that starts at `start`, if it is one.
    private static func whitespaceAfter(_ start: Int, in text: [UInt8]) -> Int? {
        guard start < text.count else { return nil }
        let end = min(start + utf8Length(text[start]), text.count)
        return isWhitespace(text, start, end) ? end : nil
    }

    private static func isWhitespace(_ text: [UInt8], _ start: Int, _ end: Int) -> Bool {
        var scalars = String(decoding: text[start..<end], as: UTF8.self).unicodeScalars.makeIterator()
        guard let scalar = scalars.next() else { return false }
        return scalar.properties.isWhitespace
    }
}
