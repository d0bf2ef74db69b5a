/// A bounds-checked little-endian reader over a byte buffer.
///
/// Every read checks the remaining length first and throws an error naming the
/// file and the field, so a corrupt length can never read past the end or
/// drive an allocation.
public struct ByteCursor {
    public let bytes: UnsafeRawBufferPointer
    public let file: String
    /// Offset of the next byte to read.
    public private(set) var offset: Int

    public init(bytes: UnsafeRawBufferPointer, file: String, offset: Int = 0) {
        self.bytes = bytes
        self.file = file
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }

    /// Throws unless `count` more bytes are available for `field`.
    public func require(_ count: Int, for field: @autoclosure () -> String) throws {
        guard count >= 0, count <= remaining else {
            throw ModelFormatError.truncated(file: file, field: field(), offset: offset, needed: count, available: remaining)
        }
    }

    public mutating func skip(_ count: Int, field: @autoclosure () -> String) throws {
        try require(count, for: field())
        offset += count
    }

    /// Moves to an absolute offset within the buffer.
    public mutating func seek(to position: Int, field: @autoclosure () -> String) throws {
        guard position >= 0, position <= bytes.count else {
            throw ModelFormatError.invalid(file: file, field: field(), reason: "offset \(position) is outside the file of \(bytes.count) bytes")
        }
        offset = position
    }

    public mutating func read<T: FixedWidthInteger>(_ type: T.Type, field: @autoclosure () -> String) throws -> T {
        try require(MemoryLayout<T>.size, for: field())
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: value)
    }

    public mutating func readFloat32(field: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, field: field()))
    }

    public mutating func readFloat64(field: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, field: field()))
    }

    /// `count` raw bytes, as a slice of the underlying buffer (no copy).
    public mutating func readBytes(_ count: Int, field: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        try require(count, for: field())
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        offset += count
        return slice
    }

    /// `count` bytes decoded as UTF-8; invalid UTF-8 is an error, not a replacement.
    public mutating func readUTF8(_ count: Int, field: @autoclosure () -> String) throws -> String {
        let raw = try readBytes(count, field: field())
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw ModelFormatError.invalid(file: file, field: field(), reason: "not valid UTF-8")
        }
        return text
    }
}
