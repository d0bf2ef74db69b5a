#if canImport(Glibc)
import Glibc
#endif

/// An output file that appears at its destination complete and on disk, or
/// not at all, and that replaces an existing file only when asked. losad's one
/// way of writing a file durably: exports, reports and job checkpoints all go
/// through it (folders through `AtomicOutputFolder`, which builds on it).
///
/// Bytes go through a fixed buffer (nothing holds the whole file in memory)
/// into a temporary sibling of the destination, `.NAME.RANDOM.tmp`, in the
/// same folder so that publishing it stays on one filesystem. `commit()`
/// fsyncs it, moves it into place and fsyncs the folder. Without
/// `replacingExisting` the move is a link(2), which fails atomically when the
/// name is taken; on filesystems without hard links it is a check, then a
/// rename. Until `commit()` succeeds the temporary file is removed by
/// `discard()`, by deinit, and by `write(to:replacingExisting:_:)` on any error.
/// Every failing system call is reported (`ModelFormatError.io` naming the
/// file and the operation), the folder's fsync included.
public final class AtomicOutputFile {
    public let destination: String
    public let temporaryPath: String
    private let replacingExisting: Bool
    private var descriptor: Int32
    private let buffer: UnsafeMutableRawBufferPointer
    private var buffered = 0
    /// Bytes written so far, buffered ones included: the file offset of the next byte.
    public private(set) var position = 0
    /// The temporary file is gone: published or removed.
    private var finished = false

    private static let bufferSize = 1 << 20
    /// macOS refuses a write of more than INT_MAX bytes; Linux writes at most 0x7ffff000 per call.
    private static let largestWrite = 1 << 30

    /// Creates `destination` from what `body` writes, then commits it; on any
    /// error the temporary file is removed and `destination` is left as it was.
    public static func write(to destination: String, replacingExisting: Bool, _ body: (AtomicOutputFile) throws -> Void) throws {
        let file = try AtomicOutputFile(destination: destination, replacingExisting: replacingExisting)
        do {
            try body(file)
            try file.commit()
        } catch {
            file.discard()
            throw error
        }
    }

    /// Creates `destination` holding `bytes` (a report, a small state file).
    public static func write(_ bytes: [UInt8], to destination: String, replacingExisting: Bool) throws {
        try write(to: destination, replacingExisting: replacingExisting) { try $0.write(bytes) }
    }

    /// Opens a new temporary file for `destination`; fails at once when
    /// `destination` exists and `replacingExisting` is false.
    public init(destination: String, replacingExisting: Bool) throws {
        self.destination = destination
        self.replacingExisting = replacingExisting
        if !replacingExisting {
            try Self.refuseExisting(destination)
        }
        let (directory, name) = splitPath(destination)
        guard !name.isEmpty else {
            throw ModelFormatError.io(file: destination, operation: "write", reason: "the path names a folder, not a file")
        }
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        var descriptor: Int32 = -1
        var temporaryPath = ""
        // O_EXCL never opens someone else's file; a clash of random names just draws again.
        for _ in 0..<16 {
            let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
            temporaryPath = prefix + "." + name + "." + suffix + ".tmp"
            descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if descriptor >= 0 || errno != EEXIST { break }
        }
        guard descriptor >= 0 else {
            let code = errno
            throw ModelFormatError.io(file: destination, operation: "create the temporary file \(temporaryPath)",
                                      reason: Self.describe(code))
        }
        self.descriptor = descriptor
        self.temporaryPath = temporaryPath
        self.buffer = .allocate(byteCount: Self.bufferSize, alignment: 64)
    }

    deinit {
        if !finished { discard() }
        buffer.deallocate()
    }

    /// Throws the error a write without `replacingExisting` throws when `path`
    /// exists, so that a write of several files can check them all first.
    public static func refuseExisting(_ path: String) throws {
        if exists(path) {
            throw ModelFormatError.io(file: path, operation: "write",
                                      reason: "the file already exists (losad replaces a file only when asked)")
        }
    }

    // MARK: - Writing

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
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

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Writes `value` little-endian.
    public func write<T: FixedWidthInteger>(_ value: T) throws {
        try withUnsafeBytes(of: value.littleEndian) { try write($0) }
    }

    /// Writes zero bytes up to the next multiple of `alignment`.
    public func pad(to alignment: Int) throws {
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

    /// Writes all of `bytes`, resuming after partial writes and interruptions.
    private func writeThrough(_ bytes: UnsafeRawBufferPointer) throws {
        guard var next = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let written = Glibc.write(descriptor, next, min(left, Self.largestWrite))
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                throw ModelFormatError.io(file: destination, operation: "write the temporary file \(temporaryPath)",
                                          reason: Self.describe(code))
            }
            // Zero bytes written without an error would otherwise loop forever.
            guard written > 0 else {
                throw ModelFormatError.io(file: destination, operation: "write the temporary file \(temporaryPath)",
                                          reason: "the system accepted no bytes")
            }
            next += written
            left -= written
        }
    }

    // MARK: - Publishing

    /// Flushes, fsyncs and closes the temporary file, moves it to the
    /// destination, then fsyncs the folder so that the move survives a crash.
    public func commit() throws {
        precondition(descriptor >= 0 && !finished, "commit() after commit() or discard()")
        try flush()
        while fsync(descriptor) != 0 {
            let code = errno
            guard code == EINTR else {
                throw ModelFormatError.io(file: destination, operation: "fsync the temporary file \(temporaryPath)",
                                          reason: Self.describe(code))
            }
        }
        let closed = close(descriptor)
        let closeError = errno
        descriptor = -1
        guard closed == 0 else {
            throw ModelFormatError.io(file: destination, operation: "close the temporary file \(temporaryPath)",
                                      reason: Self.describe(closeError))
        }
        if replacingExisting {
            try rename()
        } else {
            try placeWithoutReplacing()
        }
        finished = true
        try Self.syncFolder(splitPath(destination).directory, file: destination)
    }

    /// A hard link fails rather than replace an existing name, atomically.
    /// Only where the filesystem has no hard links does it fall back to
    /// check-then-rename, which leaves a small window; any other link error is
    /// reported as it is.
    private func placeWithoutReplacing() throws {
        if link(temporaryPath, destination) == 0 {
            // The file is in place; a temporary name left behind would only be clutter.
            unlink(temporaryPath)
            return
        }
        let code = errno
        guard code != EEXIST else { throw appearedError() }
        guard code == EPERM || code == ENOTSUP || code == EOPNOTSUPP || code == EMLINK || code == ENOSYS else {
            throw ModelFormatError.io(file: destination, operation: "link \(temporaryPath) into place", reason: Self.describe(code))
        }
        guard !Self.exists(destination) else { throw appearedError() }
        try rename()
    }

    private func rename() throws {
        guard Glibc.rename(temporaryPath, destination) == 0 else {
            let code = errno
            throw ModelFormatError.io(file: destination, operation: "rename \(temporaryPath) into place", reason: Self.describe(code))
        }
    }

    private func appearedError() -> ModelFormatError {
        .io(file: destination, operation: "write",
            reason: "the file appeared while it was being written (losad replaces a file only when asked)")
    }

    /// Fsyncs a folder so that the names just written or renamed in it survive a crash; `file` is what
    /// the error names. A filesystem that cannot fsync a folder at all (EINVAL, EROFS) has nothing to lose.
    public static func syncFolder(_ directory: String, file: String) throws {
        let handle = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard handle >= 0 else {
            let code = errno
            throw ModelFormatError.io(file: file, operation: "open the folder \(directory) to fsync it", reason: describe(code))
        }
        defer { close(handle) }
        while fsync(handle) != 0 {
            let code = errno
            if code == EINTR { continue }
            if code == EINVAL || code == EROFS { return }
            throw ModelFormatError.io(file: file, operation: "fsync the folder \(directory)", reason: describe(code))
        }
    }

    /// Closes and removes the temporary file; does nothing once committed.
    public func discard() {
        if descriptor >= 0 {
            close(descriptor)
            descriptor = -1
        }
        if !finished {
            unlink(temporaryPath)
            finished = true
        }
    }

    // MARK: - Helpers

    /// lstat, so that a dangling symbolic link counts as taken too.
    static func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }

    static func describe(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}
