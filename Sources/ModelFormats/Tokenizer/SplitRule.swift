// Pre-tokenizer regexes as hand-written scanners over Unicode scalars.
//
// Each rule reproduces one regular expression that llama.cpp (src/llama-vocab.cpp,
// llm_tokenizer_bpe; src/unicode.cpp) and Hugging Face tokenizers (Split /
// ByteLevel / Digits pre-tokenizers) use, with the regex's leftmost-first
// alternation and greedy repetition worked out by hand. A split is "isolated":
// every match and every stretch between matches becomes a piece, in order.
// Character classes follow Unicode: \p{L} and \p{N} by general category, \s by
// the White_Space property.

/// The character classes the pre-tokenizer regexes test, one bit each.
struct CharacterClass: OptionSet, Sendable {
    let rawValue: UInt8

    /// \p{L}: Lu, Ll, Lt, Lm, Lo.
    static let letter = CharacterClass(rawValue: 1 << 0)
    /// \p{N}: Nd, Nl, No.
    static let number = CharacterClass(rawValue: 1 << 1)
    /// \s: the Unicode White_Space property.
    static let whitespace = CharacterClass(rawValue: 1 << 2)
    /// \p{P}: Pc, Pd, Ps, Pe, Pi, Pf, Po.
    static let punctuation = CharacterClass(rawValue: 1 << 3)
    /// `\r` or `\n`.
    static let lineBreak = CharacterClass(rawValue: 1 << 4)
    /// `$ + < = > ^ ~ |`, the symbols llama.cpp's default pre-tokenizer groups with punctuation.
    static let groupedSymbol = CharacterClass(rawValue: 1 << 5)
    /// `0`–`9`.
    static let asciiDigit = CharacterClass(rawValue: 1 << 6)

    /// Neither \s, \p{L} nor \p{N}: what `[^\s\p{L}\p{N}]` matches.
    var isOther: Bool { isDisjoint(with: [.letter, .number, .whitespace]) }

    static func of(_ value: UInt32) -> CharacterClass {
        value < 128 ? asciiTable[Int(value)] : classify(value)
    }

    private static let asciiTable: [CharacterClass] = (0..<128).map { classify(UInt32($0)) }

    private static func classify(_ value: UInt32) -> CharacterClass {
        guard let scalar = Unicode.Scalar(value) else { return [] }
        let properties = scalar.properties
        var result: CharacterClass = properties.isWhitespace ? .whitespace : []
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            result.insert(.letter)
        case .decimalNumber, .letterNumber, .otherNumber:
            result.insert(.number)
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            result.insert(.punctuation)
        default:
            break
        }
        switch value {
        case 0x0A, 0x0D: result.insert(.lineBreak)
        case 0x24, 0x2B, 0x3C, 0x3D, 0x3E, 0x5E, 0x7E, 0x7C: result.insert(.groupedSymbol)
        case 0x30...0x39: result.insert(.asciiDigit)
        default: break
        }
        return result
    }
}

/// One piece of text decoded to scalars for scanning: scalar values, their
/// classes, and where each scalar starts in the UTF-8 bytes.
struct ScalarScratch {
    var scalars: [UInt32] = []
    var classes: [CharacterClass] = []
    /// `byteOffsets[i]` is the UTF-8 offset of scalar `i`; one extra entry holds the end.
    var byteOffsets: [Int] = []

    /// Decodes `bytes` (valid UTF-8: it comes from a Swift String) into the scratch arrays.
    mutating func load(_ bytes: ArraySlice<UInt8>) {
        scalars.removeAll(keepingCapacity: true)
        classes.removeAll(keepingCapacity: true)
        byteOffsets.removeAll(keepingCapacity: true)
        var index = bytes.startIndex
        let base = bytes.startIndex
        while index < bytes.endIndex {
            let lead = bytes[index]
            let length = min(utf8Length(lead), bytes.endIndex - index)
            var value = UInt32(lead)
            if length > 1 {
                value &= UInt32(0x7F >> length)
                for k in 1..<length {
                    value = value << 6 | UInt32(bytes[index + k] & 0x3F)
                }
            }
            scalars.append(value)
            classes.append(CharacterClass.of(value))
            byteOffsets.append(index - base)
            index += length
        }
        byteOffsets.append(bytes.count)
    }
}

/// One regex of a pre-tokenizer, as a scanner.
enum SplitRule: Sendable, Equatable {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    /// (llama.cpp drops the final `|\s+`; the pieces are the same).
    case gpt2
    /// Llama 3 (`maxDigits` 3) and Qwen2 (`maxDigits` 1):
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    case llama3(maxDigits: Int)
    /// `\p{N}` (`maxRun` 1), `\p{N}{1,3}` (3) or `\p{N}+` (nil): runs of numbers, cut every `maxRun`.
    case numbers(maxRun: Int?)
    /// `[0-9][0-9][0-9]`.
    case asciiDigitTriples
    /// `[\p{P}\$\+<=>\^~\|]+`.
    case punctuationRuns

    /// The regexes this scanner reproduces, as llama.cpp and tokenizer.json files spell them.
    /// One table for both readers; a pattern not listed here is refused by name.
    static let knownPatterns: [String: SplitRule] = [
        #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"#: .gpt2,
        #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#: .gpt2,
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .llama3(maxDigits: 3),
        #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .llama3(maxDigits: 3),
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .llama3(maxDigits: 1),
        #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .llama3(maxDigits: 1),
        #"\p{N}"#: .numbers(maxRun: 1),
        #"\p{N}{1,3}"#: .numbers(maxRun: 3),
        #"\p{N}+"#: .numbers(maxRun: nil),
        #"[0-9][0-9][0-9]"#: .asciiDigitTriples,
        #"[\p{P}\$\+<=>\^~\|]+"#: .punctuationRuns,
    ]

    /// Splits scalars `range` of `text` into pieces (matches and the stretches between them).
    func split(_ text: ScalarScratch, _ range: Range<Int>, into pieces: inout [Range<Int>]) {
        var gapStart = range.lowerBound
        var index = range.lowerBound
        while index < range.upperBound {
            let length = matchLength(text, at: index, end: range.upperBound)
            if length == 0 {
                index += 1
                continue
            }
            if gapStart < index { pieces.append(gapStart..<index) }
            pieces.append(index..<(index + length))
            index += length
            gapStart = index
        }
        if gapStart < range.upperBound { pieces.append(gapStart..<range.upperBound) }
    }

    /// Length in scalars of the match starting at `index`, or 0.
    func matchLength(_ text: ScalarScratch, at index: Int, end: Int) -> Int {
        switch self {
        case .gpt2: return Self.gpt2Match(text, index, end)
        case .llama3(let maxDigits): return Self.llama3Match(text, index, end, maxDigits: maxDigits)
        case .numbers(let maxRun):
            return Self.run(text, from: index, end: end, limit: maxRun ?? Int.max) { $0.contains(.number) }
        case .asciiDigitTriples:
            guard index + 3 <= end else { return 0 }
            let classes = text.classes
            return classes[index].contains(.asciiDigit) && classes[index + 1].contains(.asciiDigit)
                && classes[index + 2].contains(.asciiDigit) ? 3 : 0
        case .punctuationRuns:
            return Self.run(text, from: index, end: end) { !$0.isDisjoint(with: [.punctuation, .groupedSymbol]) }
        }
    }

    // MARK: - Scanners

    /// Number of consecutive scalars from `start` (at most `limit`) whose class satisfies `test`.
    private static func run(_ text: ScalarScratch, from start: Int, end: Int, limit: Int = Int.max,
                            _ test: (CharacterClass) -> Bool) -> Int {
        var index = start
        while index < end, index - start < limit, test(text.classes[index]) { index += 1 }
        return index - start
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` (ASCII case folded when `caseInsensitive`): the contraction's length, or 0.
    private static func contraction(_ text: ScalarScratch, _ index: Int, _ end: Int, caseInsensitive: Bool) -> Int {
        let scalars = text.scalars
        guard scalars[index] == 0x27, index + 1 < end else { return 0 }  // '
        let fold: (UInt32) -> UInt32 = { caseInsensitive && (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 }
        let first = fold(scalars[index + 1])
        if first == 0x73 || first == 0x74 || first == 0x6D || first == 0x64 { return 2 }  // s t m d
        guard index + 2 < end else { return 0 }
        let second = fold(scalars[index + 2])
        switch (first, second) {
        case (0x72, 0x65), (0x76, 0x65), (0x6C, 0x6C): return 3  // re ve ll
        default: return 0
        }
    }

    /// Whitespace alternatives shared by GPT-2 and Llama 3: `\s+(?!\S)|\s+`, given the run length.
    private static func whitespaceRun(_ count: Int, followedByText: Bool) -> Int {
        count >= 2 && followedByText ? count - 1 : count
    }

    private static func gpt2Match(_ text: ScalarScratch, _ index: Int, _ end: Int) -> Int {
        let contractionLength = contraction(text, index, end, caseInsensitive: false)
        if contractionLength > 0 { return contractionLength }
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: at most one applies to the scalar after the optional space.
        let body = text.scalars[index] == 0x20 && index + 1 < end ? index + 1 : index
        let bodyClass = text.classes[body]
        if bodyClass.contains(.letter) {
            return body - index + run(text, from: body, end: end) { $0.contains(.letter) }
        }
        if bodyClass.contains(.number) {
            return body - index + run(text, from: body, end: end) { $0.contains(.number) }
        }
        if bodyClass.isOther {
            return body - index + run(text, from: body, end: end) { $0.isOther }
        }
        let spaces = run(text, from: index, end: end) { $0.contains(.whitespace) }
        return whitespaceRun(spaces, followedByText: index + spaces < end)
    }

    private static func llama3Match(_ text: ScalarScratch, _ index: Int, _ end: Int, maxDigits: Int) -> Int {
        let contractionLength = contraction(text, index, end, caseInsensitive: true)
        if contractionLength > 0 { return contractionLength }
        let classes = text.classes
        let here = classes[index]
        // `[^\r\n\p{L}\p{N}]?\p{L}+`
        if here.contains(.letter) {
            return run(text, from: index, end: end) { $0.contains(.letter) }
        }
        if here.isDisjoint(with: [.lineBreak, .number]), index + 1 < end, classes[index + 1].contains(.letter) {
            return 1 + run(text, from: index + 1, end: end) { $0.contains(.letter) }
        }
        // `\p{N}{1,maxDigits}`
        if here.contains(.number) {
            return run(text, from: index, end: end, limit: maxDigits) { $0.contains(.number) }
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let body = text.scalars[index] == 0x20 && index + 1 < end ? index + 1 : index
        if classes[body].isOther {
            let symbols = body + run(text, from: body, end: end) { $0.isOther }
            return symbols - index + run(text, from: symbols, end: end) { $0.contains(.lineBreak) }
        }
        // `\s*[\r\n]+`: up to the last line break of the whitespace run; then `\s+(?!\S)|\s+`.
        let spaces = run(text, from: index, end: end) { $0.contains(.whitespace) }
        var lastBreak = -1
        for k in index..<(index + spaces) where classes[k].contains(.lineBreak) { lastBreak = k }
        if lastBreak >= 0 { return lastBreak + 1 - index }
        return whitespaceRun(spaces, followedByText: index + spaces < end)
    }
}
