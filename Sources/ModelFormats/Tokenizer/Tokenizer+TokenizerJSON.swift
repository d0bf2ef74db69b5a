import Foundation

// Tokenizers from Hugging Face tokenizer.json files (the `tokenizers` library's
// serialisation: model, added_tokens, normalizer, pre_tokenizer,
// post_processor, decoder). Only BPE models are read; every component type or
// option losad does not reproduce exactly is refused by name.

extension Tokenizer {
    /// The tokenizer in the tokenizer.json file at `path`.
    public init(tokenizerJSONAt path: String) throws {
        let file = try MappedFile(path: path)
        try self.init(tokenizerJSON: Data(file.bytes), file: path)
    }

    /// The tokenizer a tokenizer.json document describes; `file` names it in errors.
    public init(tokenizerJSON data: Data, file: String) throws {
        let document: TokenizerJSONDocument
        do {
            document = try JSONDecoder().decode(TokenizerJSONDocument.self, from: data)
        } catch let error as DecodingError {
            throw ModelFormatError.invalid(file: file, field: error.fieldPath, reason: error.reason)
        }
        let parts = TokenizerJSONParts(file: file)
        let model = document.model
        if let type = model.type, type != "BPE" {
            throw ModelFormatError.unsupported(file: file, field: "model.type",
                reason: "'\(type)' models cannot be read by losad; it reads BPE models")
        }
        if let dropout = model.dropout, dropout != 0 {
            throw ModelFormatError.unsupported(file: file, field: "model.dropout", reason: "BPE dropout \(dropout) makes encoding random")
        }
        for (field, value) in [("model.continuing_subword_prefix", model.continuingSubwordPrefix),
                               ("model.end_of_word_suffix", model.endOfWordSuffix)] where !(value ?? "").isEmpty {
            throw ModelFormatError.unsupported(file: file, field: field, reason: "word affix \(String(reflecting: value!)) is not implemented")
        }

        let vocabulary = try parts.vocabulary(model, document.addedTokens)
        let normalizer = try parts.normalizer(document.normalizer, at: "normalizer")
        let preTokenizer = try parts.preTokenizer(document.preTokenizer, at: "pre_tokenizer")
        let byteLevel = preTokenizer.contains { if case .byteLevel = $0 { return true } else { return false } }
        let unknown = try model.unknownToken.map { text -> Int32 in
            guard let id = vocabulary.id(of: text) else {
                throw ModelFormatError.invalid(file: file, field: "model.unk_token", reason: "\(String(reflecting: text)) is not in model.vocab")
            }
            return id
        }
        let symbols: RankedBPE.Symbols
        if byteLevel {
            symbols = .bytes(tokenForByte: ByteLevelAlphabet.utf8ForByte.map { vocabulary.id(of: $0[...]) ?? -1 })
        } else {
            symbols = .characters(byteTokens: model.byteFallback ? vocabulary.byteTokenIDs() : nil, unknown: unknown,
                                  fuseUnknown: model.fuseUnknown)
        }
        let bpe = RankedBPE(symbols: symbols, pairs: try parts.merges(model.merges, vocabulary), ignoreMerges: model.ignoreMerges)
        let (prefix, suffix) = try parts.postProcessor(document.postProcessor, at: "post_processor", vocabulary)

        var added: [AddedToken] = []
        for (index, entry) in document.addedTokens.enumerated() {
            if entry.singleWord {
                throw ModelFormatError.unsupported(file: file, field: "added_tokens[\(index)].single_word",
                    reason: "token \(String(reflecting: entry.content)) is matched only as a whole word, which losad does not implement")
            }
            added.append(AddedToken(id: Int32(entry.id), content: Array(entry.content.utf8),
                                    absorbsWhitespaceBefore: entry.lstrip, absorbsWhitespaceAfter: entry.rstrip))
        }

        self.algorithm = byteLevel ? .byteLevelBPE : .sentencePieceBPE
        self.bosTokenID = prefix.first
        self.eosTokenID = suffix.last
        self.unknownTokenID = unknown
        self.paddingTokenID = nil
        self.prefixTokenIDs = prefix
        self.suffixTokenIDs = suffix
        self.vocabulary = vocabulary
        self.addedTokens = AddedTokenMatcher(added)
        self.pipeline = TextPipeline(normalizer: normalizer, preTokenizer: preTokenizer, model: .ranked(bpe))
        self.decoding = try parts.decoding(document.decoder, at: "decoder", vocabulary)
    }
}

// MARK: - The document

/// The parts of a tokenizer.json that are large or fixed in shape, decoded as types;
/// the polymorphic components stay JSON until `TokenizerJSONParts` reads them.
struct TokenizerJSONDocument: Decodable {
    let addedTokens: [AddedTokenEntry]
    let normalizer: JSONValue
    let preTokenizer: JSONValue
    let postProcessor: JSONValue
    let decoder: JSONValue
    let model: BPEModelEntry

    enum CodingKeys: String, CodingKey {
        case addedTokens = "added_tokens", normalizer, preTokenizer = "pre_tokenizer", postProcessor = "post_processor", decoder, model
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        addedTokens = try container.decodeIfPresent([AddedTokenEntry].self, forKey: .addedTokens) ?? []
        normalizer = try container.decodeIfPresent(JSONValue.self, forKey: .normalizer) ?? .null
        preTokenizer = try container.decodeIfPresent(JSONValue.self, forKey: .preTokenizer) ?? .null
        postProcessor = try container.decodeIfPresent(JSONValue.self, forKey: .postProcessor) ?? .null
        self.decoder = try container.decodeIfPresent(JSONValue.self, forKey: .decoder) ?? .null
        model = try container.decode(BPEModelEntry.self, forKey: .model)
    }

    struct AddedTokenEntry: Decodable {
        let id: Int
        let content: String
        let singleWord: Bool
        let lstrip: Bool
        let rstrip: Bool
        let special: Bool

        enum CodingKeys: String, CodingKey {
            case id, content, singleWord = "single_word", lstrip, rstrip, special
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            id = try container.decode(Int.self, forKey: .id)
            content = try container.decode(String.self, forKey: .content)
            singleWord = try container.decodeIfPresent(Bool.self, forKey: .singleWord) ?? false
            lstrip = try container.decodeIfPresent(Bool.self, forKey: .lstrip) ?? false
            rstrip = try container.decodeIfPresent(Bool.self, forKey: .rstrip) ?? false
            special = try container.decodeIfPresent(Bool.self, forKey: .special) ?? false
        }
    }

    struct BPEModelEntry: Decodable {
        /// Absent in files older than tokenizers 0.11.
        let type: String?
        let vocab: [String: Int]
        /// "left right" strings (older files) or [left, right] pairs.
        let merges: [[String]]
        let unknownToken: String?
        let byteFallback: Bool
        let fuseUnknown: Bool
        let ignoreMerges: Bool
        let dropout: Double?
        let continuingSubwordPrefix: String?
        let endOfWordSuffix: String?

        enum CodingKeys: String, CodingKey {
            case type, vocab, merges, unknownToken = "unk_token", byteFallback = "byte_fallback", fuseUnknown = "fuse_unk"
            case ignoreMerges = "ignore_merges", dropout
            case continuingSubwordPrefix = "continuing_subword_prefix", endOfWordSuffix = "end_of_word_suffix"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            type = try container.decodeIfPresent(String.self, forKey: .type)
            unknownToken = try container.decodeIfPresent(String.self, forKey: .unknownToken)
            byteFallback = try container.decodeIfPresent(Bool.self, forKey: .byteFallback) ?? false
            fuseUnknown = try container.decodeIfPresent(Bool.self, forKey: .fuseUnknown) ?? false
            ignoreMerges = try container.decodeIfPresent(Bool.self, forKey: .ignoreMerges) ?? false
            dropout = try container.decodeIfPresent(Double.self, forKey: .dropout)
            continuingSubwordPrefix = try container.decodeIfPresent(String.self, forKey: .continuingSubwordPrefix)
            endOfWordSuffix = try container.decodeIfPresent(String.self, forKey: .endOfWordSuffix)
            guard type == nil || type == "BPE" else {  // another model's vocab has another shape
                vocab = [:]
                merges = []
                return
            }
            vocab = try container.decode([String: Int].self, forKey: .vocab)
            if let lines = try? container.decodeIfPresent([String].self, forKey: .merges) {
                merges = lines.map { $0.split(separator: " ", omittingEmptySubsequences: false).map(String.init) }
            } else {
                merges = try container.decodeIfPresent([[String]].self, forKey: .merges) ?? []
            }
        }
    }
}

extension DecodingError {
    /// The JSON path of the value that could not be decoded.
    var fieldPath: String {
        let path: [any CodingKey]
        switch self {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            path = context.codingPath
        case .keyNotFound(let key, let context):
            path = context.codingPath + [key]
        @unknown default:
            path = []
        }
        let names = path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return names.isEmpty ? "document" : String(names.drop { $0 == "." })
    }

    var reason: String {
        switch self {
        case .typeMismatch(let type, let context): return "expected \(type): \(context.debugDescription)"
        case .valueNotFound(let type, let context): return "expected \(type), found null: \(context.debugDescription)"
        case .keyNotFound(let key, _): return "the key '\(key.stringValue)' is missing"
        case .dataCorrupted(let context): return "not valid JSON: \(context.debugDescription)"
        @unknown default: return "cannot be decoded"
        }
    }
}

// MARK: - Components

/// Reads each tokenizer.json component into the pipeline's terms; errors name the JSON path.
private struct TokenizerJSONParts {
    let file: String

    private func unsupported(_ path: String, _ reason: String) -> ModelFormatError {
        .unsupported(file: file, field: path, reason: reason)
    }

    private func invalid(_ path: String, _ reason: String) -> ModelFormatError {
        .invalid(file: file, field: path, reason: reason)
    }

    private func type(of value: JSONValue, at path: String) throws -> String {
        guard let type = value["type"]?.string else { throw invalid("\(path).type", "a component without a type") }
        return type
    }

    /// model.vocab and added_tokens as one table; ids must be distinct and dense enough to hold in memory.
    func vocabulary(_ model: TokenizerJSONDocument.BPEModelEntry,
                    _ added: [TokenizerJSONDocument.AddedTokenEntry]) throws -> TokenVocabulary {
        let listed = model.vocab.count + added.count
        var texts = [String?](repeating: nil, count: listed)
        var kinds = [TokenKind](repeating: .unused, count: listed)
        var size = 0
        for (text, id) in model.vocab.sorted(by: { $0.value < $1.value }) {
            guard id >= 0, id < listed else {
                throw invalid("model.vocab", "token \(String(reflecting: text)) has id \(id), outside 0..<\(listed)")
            }
            if let other = texts[id] {
                throw invalid("model.vocab", "tokens \(String(reflecting: other)) and \(String(reflecting: text)) share id \(id)")
            }
            texts[id] = text
            kinds[id] = model.byteFallback && TokenVocabulary.byteValue(ofByteToken: text) != nil ? .byte : .normal
            size = max(size, id + 1)
        }
        for (index, token) in added.enumerated() {
            guard token.id >= 0, token.id < listed else {
                throw invalid("added_tokens[\(index)].id", "id \(token.id) is outside 0..<\(listed)")
            }
            texts[token.id] = token.content  // an added token's content is what its id decodes to
            kinds[token.id] = token.special ? .control : .userDefined
            size = max(size, token.id + 1)
        }
        return try TokenVocabulary(texts: texts[..<size].map { $0 ?? "" }, kinds: Array(kinds[..<size]),
                                   scores: [], file: file, field: "model.vocab")
    }

    func merges(_ merges: [[String]], _ vocabulary: TokenVocabulary) throws -> [(left: Int32, right: Int32, merged: Int32)] {
        try merges.enumerated().map { rank, parts in
            guard parts.count == 2 else {
                throw invalid("model.merges[\(rank)]", "\(parts) is not a pair of tokens")
            }
            func token(_ text: String) throws -> Int32 {
                guard let id = vocabulary.id(of: text) else {
                    throw invalid("model.merges[\(rank)]", "merge \(parts) names \(String(reflecting: text)), which is not in model.vocab")
                }
                return id
            }
            return (try token(parts[0]), try token(parts[1]), try token(parts[0] + parts[1]))
        }
    }

    func normalizer(_ value: JSONValue, at path: String) throws -> [NormalizerStep] {
        if value.isNull { return [] }
        switch try type(of: value, at: path) {
        case "Sequence":
            guard let items = value["normalizers"]?.array else { throw invalid("\(path).normalizers", "expected an array") }
            return try items.enumerated().flatMap { try normalizer($1, at: "\(path).normalizers[\($0)]") }
        case "Prepend":
            guard let prefix = value["prepend"]?.string else { throw invalid("\(path).prepend", "expected a string") }
            return [.prepend(Array(prefix.utf8))]
        case "Replace":
            guard let pattern = value["pattern"]?["String"]?.string else {
                throw unsupported("\(path).pattern", "only plain-string patterns are implemented, not \(value["pattern"] ?? .null)")
            }
            guard let content = value["content"]?.string else { throw invalid("\(path).content", "expected a string") }
            return [.replace(Array(pattern.utf8), Array(content.utf8))]
        case "NFC":
            return [.nfc]
        case let other:
            throw unsupported("\(path).type", "normalizer '\(other)' is not implemented")
        }
    }

    func preTokenizer(_ value: JSONValue, at path: String) throws -> [PreTokenizerStep] {
        if value.isNull { return [] }
        switch try type(of: value, at: path) {
        case "Sequence":
            guard let items = value["pretokenizers"]?.array else { throw invalid("\(path).pretokenizers", "expected an array") }
            return try items.enumerated().flatMap { try preTokenizer($1, at: "\(path).pretokenizers[\($0)]") }
        case "ByteLevel":
            return [.byteLevel(addPrefixSpace: value["add_prefix_space"]?.bool ?? true, useRegex: value["use_regex"]?.bool ?? true)]
        case "Digits":
            return [.split(.numbers(maxRun: value["individual_digits"]?.bool == true ? 1 : nil))]
        case "Split":
            guard let pattern = value["pattern"]?["Regex"]?.string else {
                throw unsupported("\(path).pattern", "only regex patterns are implemented, not \(value["pattern"] ?? .null)")
            }
            guard let rule = SplitRule.knownPatterns[pattern] else {
                throw unsupported("\(path).pattern", "regex \(String(reflecting: pattern)) is not one losad reproduces")
            }
            guard value["behavior"]?.string == "Isolated", value["invert"]?.bool != true else {
                throw unsupported("\(path).behavior", "only behavior Isolated without invert is implemented")
            }
            return [.split(rule)]
        case "Metaspace":
            let replacement = value["replacement"]?.string ?? "\u{2581}"
            let scheme: PrependScheme
            if let name = value["prepend_scheme"]?.string {
                guard let parsed = PrependScheme(rawValue: name) else { throw invalid("\(path).prepend_scheme", "unknown scheme '\(name)'") }
                scheme = parsed
            } else {
                scheme = value["add_prefix_space"]?.bool == false ? .never : .always
            }
            return [.metaspace(replacement: Array(replacement.utf8), prependScheme: scheme, split: value["split"]?.bool ?? true)]
        case let other:
            throw unsupported("\(path).type", "pre-tokenizer '\(other)' is not implemented")
        }
    }

    /// The ids a post-processor puts before and after a single sequence.
    func postProcessor(_ value: JSONValue, at path: String, _ vocabulary: TokenVocabulary) throws -> ([Int32], [Int32]) {
        if value.isNull { return ([], []) }
        switch try type(of: value, at: path) {
        case "Sequence":
            guard let items = value["processors"]?.array else { throw invalid("\(path).processors", "expected an array") }
            var prefix: [Int32] = [], suffix: [Int32] = []
            for (index, item) in items.enumerated() {
                let (before, after) = try postProcessor(item, at: "\(path).processors[\(index)]", vocabulary)
                prefix = before + prefix
                suffix += after
            }
            return (prefix, suffix)
        case "ByteLevel":
            return ([], [])
        case "TemplateProcessing":
            guard let single = value["single"]?.array else { throw invalid("\(path).single", "expected an array") }
            var prefix: [Int32] = [], suffix: [Int32] = []
            var seenSequence = false
            for (index, piece) in single.enumerated() {
                if piece["Sequence"] != nil {
                    seenSequence = true
                    continue
                }
                guard let name = piece["SpecialToken"]?["id"]?.string else {
                    throw invalid("\(path).single[\(index)]", "expected a SpecialToken or a Sequence")
                }
                guard let ids = value["special_tokens"]?[name]?["ids"]?.array?.compactMap(\.integer), !ids.isEmpty,
                      ids.allSatisfy({ $0 >= 0 && $0 < vocabulary.count }) else {
                    throw invalid("\(path).special_tokens", "special token \(String(reflecting: name)) has no ids inside the vocabulary")
                }
                if seenSequence { suffix += ids.map(Int32.init) } else { prefix += ids.map(Int32.init) }
            }
            return (prefix, suffix)
        case "RobertaProcessing", "BertProcessing":
            func id(_ key: String) throws -> Int32 {
                guard let pair = value[key]?.array, pair.count == 2, let id = pair[1].integer, id >= 0, id < vocabulary.count else {
                    throw invalid("\(path).\(key)", "expected [token, id] inside the vocabulary")
                }
                return Int32(id)
            }
            return ([try id("cls")], [try id("sep")])
        case let other:
            throw unsupported("\(path).type", "post-processor '\(other)' is not implemented")
        }
    }

    func decoding(_ value: JSONValue, at path: String, _ vocabulary: TokenVocabulary) throws -> Tokenizer.Decoding {
        if value.isNull {
            return Tokenizer.Decoding(vocabulary: vocabulary, normalTokens: .verbatim, stripsLeadingSpace: false, joinsWithSpaces: true)
        }
        let steps: [(JSONValue, String)]
        if try type(of: value, at: path) == "Sequence" {
            guard let items = value["decoders"]?.array else { throw invalid("\(path).decoders", "expected an array") }
            steps = items.enumerated().map { ($1, "\(path).decoders[\($0)]") }
        } else {
            steps = [(value, path)]
        }
        var normalTokens: Tokenizer.Decoding.NormalTokens = .verbatim
        var stripsLeadingSpace = false
        for (step, stepPath) in steps {
            switch try type(of: step, at: stepPath) {
            case "ByteLevel":
                normalTokens = .byteLevel
            case "Metaspace":
                normalTokens = .metaspace(Array((step["replacement"]?.string ?? "\u{2581}").utf8))
                let scheme = step["prepend_scheme"]?.string ?? (step["add_prefix_space"]?.bool == false ? "never" : "always")
                stripsLeadingSpace = scheme != "never"
            case "Replace":
                guard let pattern = step["pattern"]?["String"]?.string, step["content"]?.string == " " else {
                    throw unsupported(stepPath, "only Replace of a string by a space is implemented")
                }
                normalTokens = .metaspace(Array(pattern.utf8))
            case "ByteFallback", "Fuse":
                break  // byte tokens always decode to their byte; pieces are always joined
            case "Strip":
                guard step["content"]?.string == " ", step["start"]?.integer ?? 0 <= 1, step["stop"]?.integer ?? 0 == 0 else {
                    throw unsupported(stepPath, "only Strip of one leading space is implemented")
                }
                stripsLeadingSpace = step["start"]?.integer == 1
            case let other:
                throw unsupported("\(stepPath).type", "decoder '\(other)' is not implemented")
            }
        }
        return Tokenizer.Decoding(vocabulary: vocabulary, normalTokens: normalTokens, stripsLeadingSpace: stripsLeadingSpace)
    }
}
