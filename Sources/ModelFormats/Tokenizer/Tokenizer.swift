/// A model's tokenizer, read from GGUF metadata (`init(ggufMetadata:file:)`)
/// or from a Hugging Face tokenizer.json (`init(tokenizerJSON:file:)`), that
/// encodes text to the ids the model was trained on and decodes ids to text.
///
/// Encoding follows the model's own tokenizer: llama.cpp's for a GGUF
/// vocabulary (src/llama-vocab.cpp, parse_special on), Hugging Face
/// tokenizers' for a tokenizer.json. Added and control tokens such as
/// `<|im_start|>` are matched whole in the input first; the text between them
/// is normalized, pre-tokenized and merged by byte-level BPE (GPT-2 style) or
/// SentencePiece BPE with byte fallback.
public struct Tokenizer: Sendable {
    /// The subword algorithm of a vocabulary.
    public enum Algorithm: String, Sendable {
        /// GPT-2 style: bytes mapped to printable characters, merged by rank.
        case byteLevelBPE
        /// SentencePiece style: characters, spaces as `▁`, merged by score or rank, `<0xXX>` byte fallback.
        case sentencePieceBPE
    }

    /// How the vocabulary splits words into tokens.
    public let algorithm: Algorithm
    /// Beginning-of-sequence token, when the model has one.
    public let bosTokenID: Int32?
    /// End-of-sequence token, when the model has one.
    public let eosTokenID: Int32?
    /// The token for text the vocabulary cannot spell, when the model has one.
    public let unknownTokenID: Int32?
    /// Padding token named by GGUF metadata (tokenizer.json keeps it in tokenizer_config.json, which is not read).
    public let paddingTokenID: Int32?
    /// Ids `encode(_:addSpecialTokens: true)` puts before the text (BOS for most models).
    public let prefixTokenIDs: [Int32]
    /// Ids `encode(_:addSpecialTokens: true)` puts after the text.
    public let suffixTokenIDs: [Int32]

    let vocabulary: TokenVocabulary
    let addedTokens: AddedTokenMatcher
    let pipeline: TextPipeline
    let decoding: Decoding

    /// Number of token ids (V).
    public var vocabularySize: Int { vocabulary.count }

    /// The token's text as the vocabulary stores it (GPT-2 alphabet or `▁` for spaces).
    public func tokenText(for id: Int32) -> String? {
        id >= 0 && Int(id) < vocabulary.count ? vocabulary.texts[Int(id)] : nil
    }

    /// The id of the token whose stored text is `text`.
    public func tokenID(for text: String) -> Int32? { vocabulary.id(of: text) }

    /// The kind of token `id` is (normal, control, byte…).
    public func tokenKind(for id: Int32) -> TokenKind? {
        id >= 0 && Int(id) < vocabulary.count ? vocabulary.kinds[Int(id)] : nil
    }

    // MARK: - Encoding

    /// The ids of `text`; with `addSpecialTokens`, framed by `prefixTokenIDs` and `suffixTokenIDs`.
    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int32] {
        var output: [Int32] = []
        output.reserveCapacity(text.utf8.count / 3 + prefixTokenIDs.count + suffixTokenIDs.count)
        if addSpecialTokens { output.append(contentsOf: prefixTokenIDs) }
        let bytes = Array(text.utf8)
        var state = EncodeState()
        for segment in addedTokens.segments(of: bytes) {
            switch segment {
            case .token(let id):
                output.append(id)
            case .text(let range):
                pipeline.encode(bytes[range], atTextStart: range.lowerBound == 0, vocabulary: vocabulary,
                                state: &state, into: &output)
            }
        }
        if addSpecialTokens { output.append(contentsOf: suffixTokenIDs) }
        return output
    }

    // MARK: - Decoding

    /// How ids become bytes again.
    struct Decoding: Sendable {
        /// Each token's bytes: normal tokens decoded, byte tokens as their byte, others as their text.
        let pieces: [[UInt8]]
        /// One space is dropped from the start of the first normal or byte token (SentencePiece's dummy prefix).
        let stripsLeadingSpace: Bool
        /// Pieces are joined by a space (a tokenizer.json without a decoder).
        let joinsWithSpaces: Bool

        enum NormalTokens {
            /// GPT-2 alphabet characters stand for bytes.
            case byteLevel
            /// This byte string stands for a space.
            case metaspace([UInt8])
            /// Token texts are the text.
            case verbatim
        }

        init(vocabulary: TokenVocabulary, normalTokens: NormalTokens, stripsLeadingSpace: Bool, joinsWithSpaces: Bool = false) {
            pieces = zip(vocabulary.texts, vocabulary.kinds).map { text, kind in
                switch kind {
                case .normal:
                    switch normalTokens {
                    case .byteLevel: return ByteLevelAlphabet.decode(text)
                    case .metaspace(let replacement): return TextPipeline.replacing(replacement, with: [0x20], in: ArraySlice(text.utf8))
                    case .verbatim: return Array(text.utf8)
                    }
                case .byte:
                    return TokenVocabulary.byteValue(ofByteToken: text).map { [$0] } ?? Array(text.utf8)
                case .control, .unknown, .userDefined:
                    return Array(text.utf8)
                case .unused, .undefined:
                    return []
                }
            }
            self.stripsLeadingSpace = stripsLeadingSpace
            self.joinsWithSpaces = joinsWithSpaces
        }
    }

    /// The text of `ids`; ids outside the vocabulary are skipped. Bytes that do not form
    /// UTF-8 (a sequence cut inside a character) become U+FFFD.
    public func decode(_ ids: some Sequence<Int32>, skipSpecialTokens: Bool = false) -> String {
        String(decoding: decodeBytes(ids, skipSpecialTokens: skipSpecialTokens), as: UTF8.self)
    }

    /// The bytes of `ids`, as the model's tokenizer concatenates them.
    public func decodeBytes(_ ids: some Sequence<Int32>, skipSpecialTokens: Bool = false) -> [UInt8] {
        var bytes: [UInt8] = []
        var isFirst = true
        for id in ids {
            guard id >= 0, Int(id) < vocabulary.count else { continue }
            let kind = vocabulary.kinds[Int(id)]
            if skipSpecialTokens && kind.isSpecial { continue }
            var piece = decoding.pieces[Int(id)][...]
            if isFirst && decoding.stripsLeadingSpace && (kind == .normal || kind == .byte) && piece.first == 0x20 {
                piece = piece.dropFirst()
            }
            if decoding.joinsWithSpaces && !isFirst { bytes.append(0x20) }
            bytes.append(contentsOf: piece)
            isFirst = false
        }
        return bytes
    }
}
