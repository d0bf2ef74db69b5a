/// What a token is, as GGUF's `tokenizer.ggml.token_type` numbers them
/// (llama.cpp's llama_token_type; SentencePiece's piece types use the same numbers).
public enum TokenKind: Int32, Sendable {
    case undefined = 0
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6

    /// Control and unknown tokens: written out only on request, skipped by `skipSpecialTokens`.
    var isSpecial: Bool { self == .control || self == .unknown }
}

/// Token texts, kinds and scores, and the lookup from a token's bytes to its id.
///
/// Texts are kept as the vocabulary stores them: byte-level BPE vocabularies
/// in GPT-2's alphabet, SentencePiece vocabularies with `▁` for spaces.
struct TokenVocabulary: Sendable {
    let texts: [String]
    let kinds: [TokenKind]
    /// Merge priorities of SentencePiece-style vocabularies (higher merges first); empty otherwise.
    let scores: [Float]
    /// Token text (UTF-8) → id. Empty texts are not entered.
    let ids: [ArraySlice<UInt8>: Int32]

    var count: Int { texts.count }

    /// Throws when two tokens share a text; `field` names the array in errors.
    init(texts: [String], kinds: [TokenKind], scores: [Float], file: String, field: String) throws {
        var arena: [UInt8] = []
        arena.reserveCapacity(texts.reduce(0) { $0 + $1.utf8.count })
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(texts.count)
        for text in texts {
            let start = arena.count
            arena.append(contentsOf: text.utf8)
            ranges.append(start..<arena.count)
        }
        var ids: [ArraySlice<UInt8>: Int32] = [:]
        ids.reserveCapacity(texts.count)
        for (id, range) in ranges.enumerated() where !range.isEmpty {
            if let previous = ids.updateValue(Int32(id), forKey: arena[range]) {
                throw ModelFormatError.invalid(file: file, field: field,
                    reason: "tokens \(previous) and \(id) are both \(String(reflecting: texts[id]))")
            }
        }
        self.texts = texts
        self.kinds = kinds
        self.scores = scores
        self.ids = ids
    }

    func id(of bytes: ArraySlice<UInt8>) -> Int32? { ids[bytes] }

    func id(of text: String) -> Int32? { ids[ArraySlice(text.utf8)] }

    /// The id of SentencePiece's byte token `<0xXX>` for every byte value (-1 where missing).
    func byteTokenIDs() -> [Int32] {
        (0..<256).map { byte in
            let hex = String(byte, radix: 16, uppercase: true)
            return id(of: "<0x" + (byte < 16 ? "0" : "") + hex + ">") ?? -1
        }
    }

    /// The byte a `<0xXX>` token stands for.
    static func byteValue(ofByteToken text: String) -> UInt8? {
        let utf8 = Array(text.utf8)
        guard utf8.count == 6, utf8[0] == 0x3C, utf8[1] == 0x30, utf8[2] == 0x78, utf8[5] == 0x3E else { return nil }
        return UInt8(String(decoding: utf8[3..<5], as: UTF8.self), radix: 16)
    }
}
