/// A reader for the one Python construct pydoc_data/topics.py consists of: `NAME = {str: str, …}`,
/// each str one or more adjacent string literals (implicit concatenation), with comments and any
/// whitespace between tokens. Literals follow the Python 3 reference, "Lexical analysis / String and
/// Bytes literals": prefixes r, u (any case; b is refused), single, double and triple quotes, and in
/// non-raw literals the escapes \\ \' \" \a \b \f \n \r \t \v, \ooo, \xhh, \uXXXX, \UXXXXXXXX and
/// backslash-newline; an unknown escape keeps its backslash, as Python does. Newlines in the source
/// (\r\n, \r) read as \n inside triple-quoted literals, as Python's tokenizer normalises them.
/// \N{name} is refused: resolving names needs the Unicode name table, and no topics.py uses it.
///
/// Duplicate keys behave as in a Python dict: the first position, the last value.
struct PythonStringDictionary {
    let bytes: [UInt8]
    let file: String
    var position = 0
    var line = 1

    /// Largest source accepted (topics.py is under 1 MiB).
    static let maximumBytes = 64 << 20

    /// The (key, value) pairs of `NAME = {…}` in `bytes`, in order.
    static func parse(_ bytes: [UInt8], file: String) throws(CorpusError) -> (name: String, entries: [(key: String, value: String)]) {
        guard bytes.count <= maximumBytes else { throw .tooLarge(path: file, bytes: bytes.count, limit: maximumBytes) }
        let source = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(bytes[3...]) : bytes
        // Python 3 source is UTF-8; checked once here, literals can copy bytes through unchanged.
        guard String(validating: source, as: UTF8.self) != nil else {
            throw .notUTF8(path: file, line: TextCorpus.firstInvalidLine(source[...]))
        }
        var parser = PythonStringDictionary(bytes: source, file: file)
        return try parser.dictionaryAssignment()
    }

    // MARK: - Structure

    mutating func dictionaryAssignment() throws(CorpusError) -> (name: String, entries: [(key: String, value: String)]) {
        skipTrivia()
        let name = identifier()
        guard !name.isEmpty else { throw failure("expected a name at the start") }
        skipTrivia()
        try expect(UInt8(ascii: "="))
        skipTrivia()
        try expect(UInt8(ascii: "{"))
        var entries: [(key: String, value: String)] = []
        var slots: [String: Int] = [:]
        while true {
            skipTrivia()
            if peek == UInt8(ascii: "}") { position += 1; break }
            let key = try stringExpression()
            skipTrivia()
            try expect(UInt8(ascii: ":"))
            skipTrivia()
            let value = try stringExpression()
            if let slot = slots[key] { entries[slot].value = value } else {
                slots[key] = entries.count
                entries.append((key, value))
            }
            skipTrivia()
            if peek == UInt8(ascii: ",") { position += 1; continue }
            if peek == UInt8(ascii: "}") { position += 1; break }
            throw failure("expected ',' or '}' after the entry \(String(reflecting: key))")
        }
        skipTrivia()
        guard position == bytes.count else { throw failure("unexpected text after the dictionary") }
        return (name, entries)
    }

    /// One or more adjacent string literals, concatenated.
    mutating func stringExpression() throws(CorpusError) -> String {
        var result: [UInt8] = []
        guard let first = try stringLiteral() else { throw failure("expected a string literal") }
        result += first
        while true {
            let mark = (position, line)
            skipTrivia()
            guard let next = try stringLiteral() else {
                (position, line) = mark
                break
            }
            result += next
        }
        // The source is valid UTF-8 and escapes add whole scalars, so the bytes are UTF-8.
        return String(decoding: result, as: UTF8.self)
    }

    // MARK: - Literals

    /// The UTF-8 bytes of the string literal at the current position, or nil (position kept) when none starts here.
    mutating func stringLiteral() throws(CorpusError) -> [UInt8]? {
        var cursor = position
        var raw = false
        while cursor < bytes.count, cursor - position < 2, let letter = Self.lowercaseLetter(bytes[cursor]), "rub".contains(letter) {
            if letter == "b" { throw failure("a bytes literal where a string was expected") }
            if letter == "r" { raw = true }
            cursor += 1
        }
        guard cursor < bytes.count, bytes[cursor] == UInt8(ascii: "'") || bytes[cursor] == UInt8(ascii: "\"") else { return nil }
        let quote = bytes[cursor]
        let triple = cursor + 2 < bytes.count && bytes[cursor + 1] == quote && bytes[cursor + 2] == quote
        position = cursor + (triple ? 3 : 1)
        let startLine = line
        var output: [UInt8] = []
        while true {
            guard position < bytes.count else {
                line = startLine
                throw failure("a string literal is not closed before the end of the file")
            }
            let byte = bytes[position]
            if byte == quote {
                if !triple { position += 1; return output }
                if position + 2 < bytes.count, bytes[position + 1] == quote, bytes[position + 2] == quote {
                    position += 3
                    return output
                }
                output.append(byte)
                position += 1
            } else if byte == 0x0A || byte == 0x0D {
                guard triple else { throw failure("a newline inside a single-quoted string literal") }
                consumeNewline()
                output.append(0x0A)
            } else if byte == UInt8(ascii: "\\") {
                try escape(raw: raw, into: &output)
            } else {
                output.append(byte)
                position += 1
            }
        }
    }

    /// The escape sequence at a backslash.
    mutating func escape(raw: Bool, into output: inout [UInt8]) throws(CorpusError) {
        position += 1
        guard position < bytes.count else { throw failure("a backslash at the end of the file") }
        let byte = bytes[position]
        if byte == 0x0A || byte == 0x0D {
            // Backslash-newline: a line continuation, kept verbatim in raw literals.
            if raw { output.append(UInt8(ascii: "\\")); output.append(0x0A) }
            consumeNewline()
            return
        }
        if raw {
            // In raw literals a backslash only stops the next quote from closing the literal; both stay.
            output.append(UInt8(ascii: "\\"))
            output.append(byte)
            position += 1
            return
        }
        position += 1
        switch byte {
        case UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""): output.append(byte)
        case UInt8(ascii: "a"): output.append(0x07)
        case UInt8(ascii: "b"): output.append(0x08)
        case UInt8(ascii: "f"): output.append(0x0C)
        case UInt8(ascii: "n"): output.append(0x0A)
        case UInt8(ascii: "r"): output.append(0x0D)
        case UInt8(ascii: "t"): output.append(0x09)
        case UInt8(ascii: "v"): output.append(0x0B)
        case UInt8(ascii: "0")...UInt8(ascii: "7"):
            var value = UInt32(byte - UInt8(ascii: "0"))
            var digits = 1
            while digits < 3, position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(bytes[position]) {
                value = value * 8 + UInt32(bytes[position] - UInt8(ascii: "0"))
                position += 1
                digits += 1
            }
            try appendScalar(value, into: &output)
        case UInt8(ascii: "x"): try appendScalar(try hexDigits(2, escape: "\\x"), into: &output)
        case UInt8(ascii: "u"): try appendScalar(try hexDigits(4, escape: "\\u"), into: &output)
        case UInt8(ascii: "U"): try appendScalar(try hexDigits(8, escape: "\\U"), into: &output)
        case UInt8(ascii: "N"): throw failure("the named escape \\N{…} is not supported")
        default:
            // Python keeps unknown escapes as they are (with a warning).
            output.append(UInt8(ascii: "\\"))
            position -= 1
        }
    }

    mutating func hexDigits(_ count: Int, escape: String) throws(CorpusError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<count {
            guard position < bytes.count, let digit = Self.hexValue(bytes[position]) else {
                throw failure("the escape \(escape) needs \(count) hexadecimal digits")
            }
            value = value &* 16 &+ digit
            position += 1
        }
        return value
    }

    mutating func appendScalar(_ value: UInt32, into output: inout [UInt8]) throws(CorpusError) {
        guard let scalar = Unicode.Scalar(value) else {
            throw failure("the escape for U+\(String(value, radix: 16, uppercase: true)) is not a Unicode scalar (a surrogate or beyond U+10FFFF)")
        }
        output.append(contentsOf: Array(String(Character(scalar)).utf8))
    }

    // MARK: - Trivia

    /// Spaces, tabs, form feeds, newlines, comments and backslash-newline continuations.
    mutating func skipTrivia() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0C: position += 1
            case 0x0A, 0x0D: consumeNewline()
            case UInt8(ascii: "#"):
                while position < bytes.count, bytes[position] != 0x0A, bytes[position] != 0x0D { position += 1 }
            case UInt8(ascii: "\\") where position + 1 < bytes.count && (bytes[position + 1] == 0x0A || bytes[position + 1] == 0x0D):
                position += 1
                consumeNewline()
            default: return
            }
        }
    }

    /// One \n, \r\n or \r.
    mutating func consumeNewline() {
        if bytes[position] == 0x0D, position + 1 < bytes.count, bytes[position + 1] == 0x0A { position += 1 }
        position += 1
        line += 1
    }

    mutating func identifier() -> String {
        let start = position
        while position < bytes.count, Self.lowercaseLetter(bytes[position]) != nil || bytes[position] == UInt8(ascii: "_")
                || (position > start && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position])) {
            position += 1
        }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    mutating func expect(_ byte: UInt8) throws(CorpusError) {
        guard peek == byte else { throw failure("expected '\(Character(Unicode.Scalar(byte)))'") }
        position += 1
    }

    var peek: UInt8? { position < bytes.count ? bytes[position] : nil }

    func failure(_ reason: String) -> CorpusError { .pythonSyntax(path: file, line: line, reason: reason) }

    static func lowercaseLetter(_ byte: UInt8) -> Character? {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return Character(Unicode.Scalar(byte))
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return Character(Unicode.Scalar(byte + 32))
        default: return nil
        }
    }

    static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }
}
