/// A strict RFC 8259 JSON reader and writer for safetensors headers and index files.
///
/// Foundation's JSONSerialization would lose what the format needs: key order
/// (tensors are listed in file order), duplicate keys (the spec forbids them)
/// and exact integers (offsets are 64-bit). So objects keep their members in
/// order, duplicates are an error, and numbers keep their text until the field
/// that uses them checks it. Nesting is capped so a hostile header cannot
/// exhaust the stack.
enum SafetensorsJSON {
    case null
    case bool(Bool)
    /// The number exactly as written; see `SafetensorsJSON.nonNegativeInteger`.
    case number(String)
    case string(String)
    case array([SafetensorsJSON])
    /// Members in the order they appear; keys are unique.
    case object([Member])

    struct Member {
        let key: String
        let value: SafetensorsJSON
    }

    /// The kind of value, as an error message names it.
    var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number(let text): return "the number \(text)"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// The first member named `key`, when this is an object.
    subscript(key: String) -> SafetensorsJSON? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// The value as a non-negative integer that fits an `Int`, or why it is not one
    /// (JSON `1.0`, `1e3` and `-1` are refused, as serde refuses them for `usize`).
    var nonNegativeInteger: Result<Int, IntegerProblem> {
        guard case .number(let text) = self else { return .failure(.notANumber(kindName)) }
        guard text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return .failure(.notANonNegativeInteger(text))
        }
        guard let value = Int(text) else { return .failure(.tooLarge(text)) }
        return .success(value)
    }

    enum IntegerProblem: Error, CustomStringConvertible {
        case notANumber(String)
        case notANonNegativeInteger(String)
        case tooLarge(String)

        var description: String {
            switch self {
            case .notANumber(let kind): return "must be a non-negative integer, found \(kind)"
            case .notANonNegativeInteger(let text): return "\(text) is not a non-negative integer"
            case .tooLarge(let text): return "\(text) is too large (more than \(Int.max))"
            }
        }
    }
}

// MARK: - Reading

/// A syntax error: what was wrong and the byte offset within the JSON text.
struct SafetensorsJSONSyntaxError: Error, CustomStringConvertible {
    let reason: String
    let offset: Int
    var description: String { "\(reason) at byte \(offset)" }
}

struct SafetensorsJSONParser {
    /// Deepest nesting accepted (serde_json, which the reference reader uses, stops at 128).
    static let maximumDepth = 128

    private let bytes: UnsafeRawBufferPointer
    private var position = 0
    private var depth = 0

    private init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// Parses one JSON value with optional surrounding whitespace. `bytes` must
    /// already be valid UTF-8 (the caller checks, so it can say so precisely).
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(SafetensorsJSONSyntaxError) -> SafetensorsJSON {
        var parser = SafetensorsJSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue()
        parser.skipWhitespace()
        guard parser.position == bytes.count else { throw parser.failure("unexpected text after the value") }
        return value
    }

    private func failure(_ reason: String) -> SafetensorsJSONSyntaxError {
        SafetensorsJSONSyntaxError(reason: reason, offset: position)
    }

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
            position += 1
        }
    }

    private mutating func expect(_ byte: UInt8) throws(SafetensorsJSONSyntaxError) {
        guard current == byte else {
            throw failure(current == nil ? "text ends where '\(Character(Unicode.Scalar(byte)))' was expected"
                                         : "expected '\(Character(Unicode.Scalar(byte)))'")
        }
        position += 1
    }

    private mutating func parseValue() throws(SafetensorsJSONSyntaxError) -> SafetensorsJSON {
        guard let byte = current else { throw failure("text ends where a value was expected") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try parseLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try parseLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try parseLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw failure("unexpected byte 0x\(String(byte, radix: 16))")
        }
    }

    private mutating func enter() throws(SafetensorsJSONSyntaxError) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw failure("nesting deeper than \(Self.maximumDepth) levels") }
    }

    private mutating func parseObject() throws(SafetensorsJSONSyntaxError) -> SafetensorsJSON {
        try enter()
        defer { depth -= 1 }
        position += 1  // {
        var members: [SafetensorsJSON.Member] = []
        var seen: Set<String> = []
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw failure("expected a string key") }
            let keyOffset = position
            let key = try parseString()
            guard seen.insert(key).inserted else {
                throw SafetensorsJSONSyntaxError(reason: "key '\(key)' appears twice in one object", offset: keyOffset)
            }
            skipWhitespace()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            members.append(.init(key: key, value: try parseValue()))
            skipWhitespace()
            if current == UInt8(ascii: ",") {
                position += 1
                continue
            }
            try expect(UInt8(ascii: "}"))
            return .object(members)
        }
    }

    private mutating func parseArray() throws(SafetensorsJSONSyntaxError) -> SafetensorsJSON {
        try enter()
        defer { depth -= 1 }
        position += 1  // [
        var elements: [SafetensorsJSON] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue())
            skipWhitespace()
            if current == UInt8(ascii: ",") {
                position += 1
                continue
            }
            try expect(UInt8(ascii: "]"))
            return .array(elements)
        }
    }

    private mutating func parseLiteral(_ word: StaticString) throws(SafetensorsJSONSyntaxError) {
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard bytes.count - position >= expected.count,
              bytes[position..<(position + expected.count)].elementsEqual(expected) else {
            throw failure("unknown literal")
        }
        position += expected.count
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, kept as text.
    private mutating func parseNumber() throws(SafetensorsJSONSyntaxError) -> String {
        let start = position
        if current == UInt8(ascii: "-") { position += 1 }
        guard let first = current, isDigit(first) else { throw failure("a number needs a digit") }
        position += 1
        if first == UInt8(ascii: "0"), let next = current, isDigit(next) {
            throw failure("a number may not have a leading zero")
        }
        skipDigits()
        if current == UInt8(ascii: ".") {
            position += 1
            guard let next = current, isDigit(next) else { throw failure("a fraction needs a digit") }
            skipDigits()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard let next = current, isDigit(next) else { throw failure("an exponent needs a digit") }
            skipDigits()
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private mutating func skipDigits() {
        while let byte = current, isDigit(byte) { position += 1 }
    }

    private mutating func parseString() throws(SafetensorsJSONSyntaxError) -> String {
        position += 1  // opening quote
        let start = position
        // Fast path: no escapes, so the text between the quotes is the string.
        while let byte = current, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") {
            guard byte >= 0x20 else { throw failure("control character 0x\(String(byte, radix: 16)) inside a string") }
            position += 1
        }
        guard let stop = current else { throw failure("text ends inside a string") }
        if stop == UInt8(ascii: "\"") {
            position += 1
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<(position - 1)]), as: UTF8.self)
        }
        var utf8 = Array(bytes[start..<position])
        while true {
            guard let byte = current else { throw failure("text ends inside a string") }
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                position += 1
                try appendEscape(to: &utf8)
            case ..<0x20:
                throw failure("control character 0x\(String(byte, radix: 16)) inside a string")
            default:
                utf8.append(byte)
                position += 1
            }
        }
    }

    private mutating func appendEscape(to utf8: inout [UInt8]) throws(SafetensorsJSONSyntaxError) {
        guard let byte = current else { throw failure("text ends inside an escape") }
        position += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(byte)
        case UInt8(ascii: "b"): utf8.append(0x08)
        case UInt8(ascii: "f"): utf8.append(0x0C)
        case UInt8(ascii: "n"): utf8.append(0x0A)
        case UInt8(ascii: "r"): utf8.append(0x0D)
        case UInt8(ascii: "t"): utf8.append(0x09)
        case UInt8(ascii: "u"):
            var value = UInt32(try parseHex4())
            if (0xD800...0xDBFF).contains(value) {
                guard current == UInt8(ascii: "\\") else { throw failure("unpaired UTF-16 surrogate in \\u escape") }
                position += 1
                guard current == UInt8(ascii: "u") else { throw failure("unpaired UTF-16 surrogate in \\u escape") }
                position += 1
                let low = UInt32(try parseHex4())
                guard (0xDC00...0xDFFF).contains(low) else { throw failure("unpaired UTF-16 surrogate in \\u escape") }
                value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let scalar = Unicode.Scalar(value) else { throw failure("unpaired UTF-16 surrogate in \\u escape") }
            utf8.append(contentsOf: Array(String(scalar).utf8))
        default:
            throw failure("unknown escape '\\\(Character(Unicode.Scalar(byte)))'")
        }
    }

    private mutating func parseHex4() throws(SafetensorsJSONSyntaxError) -> UInt16 {
        var value: UInt16 = 0
        for _ in 0..<4 {
            guard let byte = current else { throw failure("text ends inside a \\u escape") }
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("\\u needs four hexadecimal digits")
            }
            value = value << 4 | UInt16(digit)
            position += 1
        }
        return value
    }
}

// MARK: - Writing

extension SafetensorsJSON {
    /// `text` as a JSON string literal, escaping what JSON requires and nothing
    /// else (as serde_json does); other characters are written as UTF-8.
    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\u{08}": result += "\\b"
            case "\u{0C}": result += "\\f"
            case "\u{00}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// Orders keys by Unicode code point, as Python's `sort_keys` does.
    static func codePointOrder(_ left: String, _ right: String) -> Bool {
        left.unicodeScalars.lexicographicallyPrecedes(right.unicodeScalars)
    }
}
