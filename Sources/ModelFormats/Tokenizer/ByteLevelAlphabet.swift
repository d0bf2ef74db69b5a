/// GPT-2's byte-to-unicode table (openai/gpt-2 encoder.py, `bytes_to_unicode`):
/// printable Latin-1 bytes stand for themselves and the other 68 bytes map, in
/// order, to U+0100 and up, so every byte has a visible character.
enum ByteLevelAlphabet {
    /// The character standing for each byte value.
    static let scalarForByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte) {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = next
                next += 1
            }
        }
        return table
    }()

    /// The UTF-8 bytes of the character standing for each byte value.
    static let utf8ForByte: [[UInt8]] = scalarForByte.map { Array(String(Unicode.Scalar($0)!).utf8) }

    /// The byte a character stands for, or nil when the character is not in the alphabet.
    static func byte(for scalar: UInt32) -> UInt8? {
        if scalar < 256 {
            return scalarForByte[Int(scalar)] == scalar ? UInt8(scalar) : nil
        }
        return byteForHighScalar[scalar]
    }

    private static let byteForHighScalar: [UInt32: UInt8] = {
        var table: [UInt32: UInt8] = [:]
        for (byte, scalar) in scalarForByte.enumerated() where scalar >= 256 { table[scalar] = UInt8(byte) }
        return table
    }()

    /// The bytes a byte-level token text stands for; characters outside the alphabet keep their UTF-8.
    static func decode(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            if let byte = byte(for: scalar.value) {
                bytes.append(byte)
            } else {
                bytes.append(contentsOf: String(scalar).utf8)
            }
        }
        return bytes
    }
}
