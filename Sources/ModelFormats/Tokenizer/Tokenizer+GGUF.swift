// Tokenizers from GGUF metadata, read as llama.cpp reads them
// (src/llama-vocab.cpp, llama_vocab::impl::load and tokenize; GGUF spec,
// "tokenizer.ggml.*" keys).

extension Tokenizer {
    /// The tokenizer that GGUF metadata (`tokenizer.ggml.*`) describes; `file` names the source in errors.
    ///
    /// Supports `tokenizer.ggml.model` "gpt2" (byte-level BPE with the pre-tokenizer
    /// `tokenizer.ggml.pre` names) and "llama" (SentencePiece BPE with byte fallback).
    public init(ggufMetadata metadata: [String: GGUFValue], file: String) throws {
        let keys = GGUFTokenizerKeys(metadata: metadata, file: file)
        guard let model = try keys.string("tokenizer.ggml.model") else { throw keys.missing("tokenizer.ggml.model") }
        guard let texts = try keys.strings("tokenizer.ggml.tokens") else { throw keys.missing("tokenizer.ggml.tokens") }
        guard !texts.isEmpty else {
            throw ModelFormatError.invalid(file: file, field: "tokenizer.ggml.tokens", reason: "the vocabulary is empty")
        }
        let algorithm: Algorithm
        switch model {
        case "gpt2": algorithm = .byteLevelBPE
        case "llama": algorithm = .sentencePieceBPE
        default:
            throw ModelFormatError.unsupported(file: file, field: "tokenizer.ggml.model",
                reason: "'\(model)' vocabularies cannot be read by losad; it reads 'gpt2' (byte-level BPE) and 'llama' (SentencePiece BPE)")
        }
        let count = texts.count
        let kinds = try keys.tokenKinds(count: count)
        let vocabulary = try TokenVocabulary(texts: texts, kinds: kinds, scores: try keys.scores(count: count),
                                             file: file, field: "tokenizer.ggml.tokens")

        // llama.cpp's defaults when a key is absent: SentencePiece vocabularies number <unk> <s> </s>
        // 0 1 2 and add BOS; byte-level ones have no default ids and add BOS only for some pre-types.
        let byDefault: (bos: Int32?, eos: Int32?, unknown: Int32?) = algorithm == .sentencePieceBPE ? (1, 2, 0) : (nil, nil, nil)
        let withinVocabulary: (Int32?) -> Int32? = { id in id.flatMap { $0 < count ? $0 : nil } }
        let bos = try keys.tokenID("tokenizer.ggml.bos_token_id", count: count) ?? withinVocabulary(byDefault.bos)
        let eos = try keys.tokenID("tokenizer.ggml.eos_token_id", count: count) ?? withinVocabulary(byDefault.eos)
        let unknown = try keys.tokenID("tokenizer.ggml.unknown_token_id", count: count) ?? withinVocabulary(byDefault.unknown)

        let pipeline: TextPipeline
        let decoding: Decoding
        var addsBOS: Bool
        switch algorithm {
        case .byteLevelBPE:
            let preName = try keys.string("tokenizer.ggml.pre") ?? "default"
            guard let pre = GGUFPreTokenizer.named[preName] else {
                throw ModelFormatError.unsupported(file: file, field: "tokenizer.ggml.pre",
                    reason: "pre-tokenizer '\(preName)' is not one losad knows; it knows \(GGUFPreTokenizer.named.keys.sorted().joined(separator: ", "))")
            }
            let tokenForByte = ByteLevelAlphabet.utf8ForByte.map { vocabulary.id(of: $0[...]) ?? -1 }
            let bpe = RankedBPE(symbols: .bytes(tokenForByte: tokenForByte), pairs: try keys.merges(vocabulary),
                                ignoreMerges: pre.ignoresMerges)
            pipeline = TextPipeline(normalizer: [], preTokenizer: pre.regexes.map { .split(SplitRule.knownPatterns[$0]!) },
                                    model: .ranked(bpe))
            decoding = Decoding(vocabulary: vocabulary, normalTokens: .byteLevel, stripsLeadingSpace: false)
            addsBOS = pre.addsBOS
        case .sentencePieceBPE:
            // llama.cpp puts a space before every text stretch (at the start and after each special token)
            // and escapes spaces as U+2581 before merging.
            let addsSpacePrefix = try keys.bool("tokenizer.ggml.add_space_prefix") ?? true
            let space: [UInt8] = [0x20], escapedSpace = Array("\u{2581}".utf8)
            var byteTokens = vocabulary.byteTokenIDs()
            for byte in 0..<256 where byteTokens[byte] < 0 {
                byteTokens[byte] = vocabulary.id(of: [UInt8(byte)][...]) ?? -1
            }
            pipeline = TextPipeline(
                normalizer: (addsSpacePrefix ? [.prepend(space)] : []) + [.replace(space, escapedSpace)],
                preTokenizer: [],
                model: .scored(ScoredBPE(byteTokens: byteTokens, unknown: unknown)))
            decoding = Decoding(vocabulary: vocabulary, normalTokens: .metaspace(escapedSpace), stripsLeadingSpace: addsSpacePrefix)
            addsBOS = true
        }
        addsBOS = try keys.bool("tokenizer.ggml.add_bos_token") ?? addsBOS
        let addsEOS = try keys.bool("tokenizer.ggml.add_eos_token") ?? false
        if addsBOS && bos == nil {
            throw ModelFormatError.invalid(file: file, field: "tokenizer.ggml.add_bos_token",
                reason: "it asks for a BOS token but tokenizer.ggml.bos_token_id is not set")
        }
        if addsEOS && eos == nil {
            throw ModelFormatError.invalid(file: file, field: "tokenizer.ggml.add_eos_token",
                reason: "it asks for an EOS token but tokenizer.ggml.eos_token_id is not set")
        }

        // llama.cpp matches control, user-defined and unknown tokens in the text (parse_special).
        let added = (0..<count).compactMap { id -> AddedToken? in
            switch kinds[id] {
            case .control, .userDefined, .unknown: return AddedToken(id: Int32(id), content: Array(texts[id].utf8))
            default: return nil
            }
        }
        self.algorithm = algorithm
        self.bosTokenID = bos
        self.eosTokenID = eos
        self.unknownTokenID = unknown
        self.paddingTokenID = try keys.tokenID("tokenizer.ggml.padding_token_id", count: count)
        self.prefixTokenIDs = addsBOS ? bos.map { [$0] } ?? [] : []
        self.suffixTokenIDs = addsEOS ? eos.map { [$0] } ?? [] : []
        self.vocabulary = vocabulary
        self.addedTokens = AddedTokenMatcher(added)
        self.pipeline = pipeline
        self.decoding = decoding
    }
}

/// A llama.cpp pre-tokenizer type: the regexes it splits by, in turn, and its defaults.
struct GGUFPreTokenizer: Sendable {
    let regexes: [String]
    var ignoresMerges = false
    var addsBOS = false

    static let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"#
    static let llama3 = #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2 = #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// `tokenizer.ggml.pre` values → llama.cpp's LLAMA_VOCAB_PRE_TYPE_* regex lists (llm_tokenizer_bpe).
    static let named: [String: GGUFPreTokenizer] = {
        var table: [String: GGUFPreTokenizer] = [
            "default": GGUFPreTokenizer(regexes: [#"[\p{P}\$\+<=>\^~\|]+"#, gpt2, #"\p{N}+"#, #"[0-9][0-9][0-9]"#]),
        ]
        for name in ["gpt-2", "phi-2", "mpt", "olmo", "jais", "trillion", "exaone4", "gigachat", "a.x-4.0", "mellum", "granite-docling"] {
            table[name] = GGUFPreTokenizer(regexes: [gpt2])
        }
        for name in ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"] {
            table[name] = GGUFPreTokenizer(regexes: [llama3], ignoresMerges: true, addsBOS: true)
        }
        for name in ["dbrx", "smaug-bpe"] {
            table[name] = GGUFPreTokenizer(regexes: [llama3])
        }
        for name in ["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan", "solar-open"] {
            table[name] = GGUFPreTokenizer(regexes: [qwen2])
        }
        for name in ["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b", "mellum2"] {
            table[name] = GGUFPreTokenizer(regexes: [#"\p{N}"#, gpt2])
        }
        return table
    }()
}

/// Typed access to `tokenizer.ggml.*` keys; every error names the key.
private struct GGUFTokenizerKeys {
    let metadata: [String: GGUFValue]
    let file: String

    func missing(_ key: String) -> ModelFormatError {
        .invalid(file: file, field: key, reason: "the key is missing; the GGUF file has no usable tokenizer")
    }

    private func wrongType(_ key: String, _ expected: String, _ value: GGUFValue) -> ModelFormatError {
        .invalid(file: file, field: key, reason: "expected \(expected), found a value of type \(value.type)")
    }

    func string(_ key: String) throws -> String? {
        guard let value = metadata[key] else { return nil }
        guard let string = value.stringValue else { throw wrongType(key, "a string", value) }
        return string
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = metadata[key] else { return nil }
        guard let bool = value.boolValue else { throw wrongType(key, "a bool", value) }
        return bool
    }

    /// A token id; it must name a token of the vocabulary.
    func tokenID(_ key: String, count: Int) throws -> Int32? {
        guard let value = metadata[key] else { return nil }
        guard let id = value.intValue else { throw wrongType(key, "an integer", value) }
        guard id >= 0, id < count else {
            throw ModelFormatError.invalid(file: file, field: key, reason: "token id \(id) is outside the vocabulary of \(count) tokens")
        }
        return Int32(id)
    }

    func strings(_ key: String) throws -> [String]? {
        guard let value = metadata[key] else { return nil }
        guard case .array(.string, let elements) = value else { throw wrongType(key, "an array of strings", value) }
        return elements.map { $0.stringValue ?? "" }
    }

    private func array(_ key: String, count: Int) throws -> [GGUFValue]? {
        guard let value = metadata[key] else { return nil }
        guard let elements = value.arrayValue else { throw wrongType(key, "an array", value) }
        guard elements.count == count else {
            throw ModelFormatError.invalid(file: file, field: key,
                reason: "it has \(elements.count) entries but tokenizer.ggml.tokens has \(count)")
        }
        return elements
    }

    /// `tokenizer.ggml.token_type`, one integer per token; all normal when the key is absent.
    func tokenKinds(count: Int) throws -> [TokenKind] {
        guard let elements = try array("tokenizer.ggml.token_type", count: count) else {
            return Array(repeating: .normal, count: count)
        }
        return try elements.enumerated().map { index, element in
            guard let raw = element.intValue else {
                throw wrongType("tokenizer.ggml.token_type[\(index)]", "an integer", element)
            }
            return Int32(exactly: raw).flatMap(TokenKind.init(rawValue:)) ?? .undefined
        }
    }

    /// `tokenizer.ggml.scores`, one number per token; zeros when the key is absent.
    func scores(count: Int) throws -> [Float] {
        guard let elements = try array("tokenizer.ggml.scores", count: count) else {
            return Array(repeating: 0, count: count)
        }
        return try elements.enumerated().map { index, element in
            guard let score = element.doubleValue else { throw wrongType("tokenizer.ggml.scores[\(index)]", "a number", element) }
            return Float(score)
        }
    }

    /// `tokenizer.ggml.merges`: "left right" strings in rank order; every part and result must be a token.
    func merges(_ vocabulary: TokenVocabulary) throws -> [(left: Int32, right: Int32, merged: Int32)] {
        let key = "tokenizer.ggml.merges"
        guard let merges = try strings(key) else { throw missing(key) }
        return try merges.enumerated().map { rank, merge in
            let utf8 = Array(merge.utf8)
            // Split at the first space after the first byte, as llama.cpp does: a token may itself be " ".
            guard utf8.count >= 3, let space = utf8[1...].firstIndex(of: 0x20) else {
                throw ModelFormatError.invalid(file: file, field: "\(key)[\(rank)]",
                    reason: "\(String(reflecting: merge)) is not two tokens separated by a space")
            }
            let left = utf8[..<space], right = utf8[(space + 1)...]
            func token(_ bytes: ArraySlice<UInt8>) throws -> Int32 {
                guard let id = vocabulary.id(of: bytes) else {
                    throw ModelFormatError.invalid(file: file, field: "\(key)[\(rank)]",
                        reason: "merge \(String(reflecting: merge)) names \(String(reflecting: String(decoding: bytes, as: UTF8.self))), which is not in tokenizer.ggml.tokens")
                }
                return id
            }
            return (try token(left), try token(right), try token(ArraySlice(left + right)))
        }
    }
}
