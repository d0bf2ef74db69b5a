#if canImport(Glibc)
import Glibc
#endif

/// A file written through a buffer into a temporary sibling of its destination
/// (named `.NAME.RANDOM.tmp`) and published by an atomic rename after fsync,
/// so that a reader never sees a half-written checkpoint.
///
/// An existing destination is replaced only when the caller asks. Until
/// `commit()` succeeds the temporary file is removed on `discard()` or deinit.
final class GGUFOutputFile {
    let destination: String
    let temporaryPath: String
    private let replacingExisting: Bool
    private var descriptor: Int32
    private let buffer: UnsafeMutableRawBufferPointer
    private var buffered = 0
    /// Bytes written so far, buffered ones included: the file offset of the next byte.
    private(set) var position = 0
    private var finished = false

    private static let bufferSize = 1 << 20
    /// Linux writes at most 0x7ffff000 bytes per call.
    private static let largestWrite = 1 << 30

    init(destination: String, replacingExisting: Bool) throws {
        self.destination = destination
        self.replacingExisting = replacingExisting
        if !replacingExisting, GGUFOutputFile.exists(destination) {
            throw ModelFormatError.io(file: destination, operation: "write",
                                      reason: "the file already exists (losad replaces a file only when asked)")
        }
        let slash = destination.lastIndex(of: "/")
        let directoryPrefix = slash.map { String(destination[...$0]) } ?? ""  // "" or ending in "/"
        let name = slash.map { String(destination[destination.index(after: $0)...]) } ?? destination
        guard !name.isEmpty else {
            throw ModelFormatError.io(file: destination, operation: "write", reason: "the path names a directory, not a file")
        }
        var descriptor: Int32 = -1
        var temporaryPath = ""
        for _ in 0..<16 {
            let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
            temporaryPath = directoryPrefix + "." + name + "." + suffix + ".tmp"
            descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if descriptor >= 0 || errno != EEXIST { break }
        }
        guard descriptor >= 0 else {
            throw ModelFormatError.io(file: destination, operation: "create the temporary file \(temporaryPath)",
                                      reason: String(cString: strerror(errno)))
        }
        self.descriptor = descriptor
        self.temporaryPath = temporaryPath
        self.buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: GGUFOutputFile.bufferSize, alignment: 64)
    }

    deinit {
        if !finished { discard() }
        buffer.deallocate()
    }

    // MARK: - Writing

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !bytes.isEmpty else { return }
        if bytes.count > buffer.count - buffered {
            try flush()
        }
        if bytes.count >= buffer.count {
            try writeThrough(bytes)
        } else {
            UnsafeMutableRawBufferPointer(rebasing: buffer[buffered..<(buffered + bytes.count)]).copyMemory(from: bytes)
            buffered += bytes.count
        }
        position += bytes.count
    }

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Writes `value` little-endian.
    func write<T: FixedWidthInteger>(_ value: T) throws {
        try withUnsafeBytes(of: value.littleEndian) { try write($0) }
    }

    /// Writes zero bytes up to the next multiple of `alignment`.
    func pad(to alignment: Int) throws {
        let padding = (alignment - position % alignment) % alignment
        if padding > 0 {
            try write([UInt8](repeating: 0, count: padding))
        }
    }

    private func flush() throws {
        guard buffered > 0 else { return }
        try writeThrough(UnsafeRawBufferPointer(rebasing: buffer[0..<buffered]))
        buffered = 0
    }

    private func writeThrough(_ bytes: UnsafeRawBufferPointer) throws {
        guard var next = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let written = Glibc.write(descriptor, next, min(left, GGUFOutputFile.largestWrite))
            if written < 0 {
                if errno == EINTR { continue }
                throw ModelFormatError.io(file: destination, operation: "write the temporary file \(temporaryPath)",
                                          reason: String(cString: strerror(errno)))
            }
            guard written > 0 else {
                throw ModelFormatError.io(file: destination, operation: "write the temporary file \(temporaryPath)",
                                          reason: "the system accepted no bytes")
            }
            next += written
            left -= written
        }
    }

    // MARK: - Publishing

    /// Flushes, fsyncs and closes the temporary file, then moves it to the destination.
    func commit() throws {
        try flush()
        while fsync(descriptor) != 0 {
            guard errno == EINTR else {
                throw ModelFormatError.io(file: destination, operation: "fsync the temporary file \(temporaryPath)",
                                          reason: String(cString: strerror(errno)))
            }
        }
        let closed = close(descriptor)
        descriptor = -1
        guard closed == 0 else {
            throw ModelFormatError.io(file: destination, operation: "close the temporary file \(temporaryPath)",
                                      reason: String(cString: strerror(errno)))
        }
        if replacingExisting {
            try rename(allowingReplace: true)
        } else if link(temporaryPath, destination) == 0 {
            // A hard link fails rather than replace an existing file, atomically.
            unlink(temporaryPath)
        } else if errno == EEXIST {
            throw ModelFormatError.io(file: destination, operation: "write",
                                      reason: "the file appeared while it was being written (losad replaces a file only when asked)")
        } else {
            // The filesystem has no hard links: check, then rename (a small window remains).
            try rename(allowingReplace: false)
        }
        finished = true
        syncDirectory()
    }

    private func rename(allowingReplace: Bool) throws {
        if !allowingReplace, GGUFOutputFile.exists(destination) {
            throw ModelFormatError.io(file: destination, operation: "write",
                                      reason: "the file appeared while it was being written (losad replaces a file only when asked)")
        }
        guard Glibc.rename(temporaryPath, destination) == 0 else {
            throw ModelFormatError.io(file: destination, operation: "rename \(temporaryPath) into place",
                                      reason: String(cString: strerror(errno)))
        }
    }

    /// Makes the rename durable. Best effort: some filesystems cannot fsync a directory.
    private func syncDirectory() {
        let slash = destination.lastIndex(of: "/")
        let directory = slash.map { $0 == destination.startIndex ? "/" : String(destination[..<$0]) } ?? "."
        let handle = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard handle >= 0 else { return }
        _ = fsync(handle)
        close(handle)
    }

    /// Closes and removes the temporary file.
    func discard() {
        if descriptor >= 0 {
            close(descriptor)
            descriptor = -1
        }
        if !finished {
            unlink(temporaryPath)
            finished = true
        }
    }

    private static func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }
}
