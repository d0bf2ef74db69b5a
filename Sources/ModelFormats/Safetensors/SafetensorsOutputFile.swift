#if canImport(Glibc)
import Glibc
#endif
import Kernels

/// A file written under a temporary name in its destination folder
/// (`.NAME.RANDOM.tmp`) and renamed into place only once complete and
/// fsync'ed, so that no reader ever sees a partial file under the real name.
/// Writes go through a fixed buffer; nothing holds the whole file in memory.
final class SafetensorsOutputFile {
    /// The destination path, named in errors.
    let path: String
    let temporaryPath: String
    private var descriptor: Int32
    private let buffer: UnsafeMutableRawBufferPointer
    private var buffered = 0
    /// Bytes accepted so far (buffered or written).
    private(set) var count = 0

    static let bufferSize = 1 << 20

    /// Creates `path` atomically from what `body` writes. Without `overwrite`, an
    /// existing file is an error and is never replaced. On any error the
    /// temporary file is removed and `path` is left as it was.
    static func write(to path: String, overwrite: Bool, _ body: (SafetensorsOutputFile) throws -> Void) throws {
        if !overwrite && fileExists(path) {
            throw ModelFormatError.io(file: path, operation: "write", reason: "the file already exists; pass overwrite: true to replace it")
        }
        let file = try SafetensorsOutputFile(path: path)
        do {
            try body(file)
            try file.finish(overwrite: overwrite)
        } catch {
            file.abandon()
            throw error
        }
    }

    private init(path: String) throws {
        self.path = path
        let (directory, name) = Self.split(path)
        let token = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        self.temporaryPath = "\(directory)/.\(name).\(token).tmp"
        descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw ModelFormatError.io(file: path, operation: "create the temporary file \(temporaryPath)", reason: Self.lastError())
        }
        buffer = .allocate(byteCount: Self.bufferSize, alignment: 64)
    }

    deinit {
        buffer.deallocate()
        if descriptor >= 0 { close(descriptor) }
    }

    // MARK: - Writing

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0, let base = bytes.baseAddress else { return }
        if buffered + bytes.count > buffer.count { try flush() }
        if bytes.count >= buffer.count {
            try writeAll(base, bytes.count)
        } else {
            (buffer.baseAddress! + buffered).copyMemory(from: base, byteCount: bytes.count)
            buffered += bytes.count
        }
        count += bytes.count
    }

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Writes `tensor`'s values as `dtype` (F32, F16 or BF16), little-endian,
    /// converting a chunk at a time.
    func write(_ tensor: Tensor, as dtype: SafetensorsDType) throws {
        let source = tensor.pointer
        let total = tensor.count
        switch dtype {
        case .f32:
            #if _endian(little)
            try write(UnsafeRawBufferPointer(start: source, count: total * 4))
            #else
            for i in 0..<total { try withUnsafeBytes(of: source[i].bitPattern.littleEndian) { try write($0) } }
            #endif
        case .f16, .bf16:
            let chunk = 8192
            try withUnsafeTemporaryAllocation(of: UInt16.self, capacity: chunk) { scratch in
                var done = 0
                while done < total {
                    let n = min(chunk, total - done)
                    if dtype == .f16 {
                        convertFloat32ToFloat16(source + done, scratch.baseAddress!, count: n)
                    } else {
                        convertFloat32ToBFloat16(source + done, scratch.baseAddress!, count: n)
                    }
                    #if !_endian(little)
                    for i in 0..<n { scratch[i] = scratch[i].littleEndian }
                    #endif
                    try write(UnsafeRawBufferPointer(start: scratch.baseAddress!, count: n * 2))
                    done += n
                }
            }
        default:
            preconditionFailure("\(dtype) is not a writable dtype")
        }
    }

    private func flush() throws {
        guard buffered > 0 else { return }
        try writeAll(UnsafeRawPointer(buffer.baseAddress!), buffered)
        buffered = 0
    }

    private func writeAll(_ start: UnsafeRawPointer, _ length: Int) throws {
        var done = 0
        while done < length {
            let result = Glibc.write(descriptor, start + done, length - done)
            if result < 0 {
                if errno == EINTR { continue }
                throw ModelFormatError.io(file: path, operation: "write \(temporaryPath)", reason: Self.lastError())
            }
            done += result
        }
    }

    // MARK: - Finishing

    private func finish(overwrite: Bool) throws {
        try flush()
        guard fsync(descriptor) == 0 else {
            throw ModelFormatError.io(file: path, operation: "fsync \(temporaryPath)", reason: Self.lastError())
        }
        let status = close(descriptor)
        descriptor = -1
        guard status == 0 else {
            throw ModelFormatError.io(file: path, operation: "close \(temporaryPath)", reason: Self.lastError())
        }
        if overwrite {
            guard rename(temporaryPath, path) == 0 else {
                throw ModelFormatError.io(file: path, operation: "rename \(temporaryPath) into place", reason: Self.lastError())
            }
        } else {
            try placeWithoutReplacing()
        }
        Self.syncDirectory(of: path)
    }

    /// Moves the finished file into place unless something appeared there
    /// meanwhile: link(2) fails atomically on an existing name. Filesystems
    /// without hard links fall back to check-then-rename.
    private func placeWithoutReplacing() throws {
        if link(temporaryPath, path) == 0 {
            unlink(temporaryPath)
            return
        }
        let linkError = errno
        if linkError == EEXIST {
            throw ModelFormatError.io(file: path, operation: "write", reason: "the file appeared while it was being written; it was not replaced")
        }
        guard linkError == EPERM || linkError == ENOTSUP || linkError == EOPNOTSUPP || linkError == EMLINK || linkError == ENOSYS,
              !Self.fileExists(path) else {
            throw ModelFormatError.io(file: path, operation: "move \(temporaryPath) into place", reason: String(cString: strerror(linkError)))
        }
        guard rename(temporaryPath, path) == 0 else {
            throw ModelFormatError.io(file: path, operation: "rename \(temporaryPath) into place", reason: Self.lastError())
        }
    }

    private func abandon() {
        if descriptor >= 0 {
            close(descriptor)
            descriptor = -1
        }
        unlink(temporaryPath)
    }

    /// Makes the rename durable, best effort: the file is already in place and
    /// its data synced, and some filesystems cannot sync a directory (EINVAL).
    private static func syncDirectory(of path: String) {
        let directory = open(split(path).directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { return }
        _ = fsync(directory)
        close(directory)
    }

    // MARK: - Paths

    static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }

    static func fileExists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }

    /// Removes a file this module wrote; true when it is gone.
    static func remove(_ path: String) -> Bool { unlink(path) == 0 || errno == ENOENT }

    static func lastError() -> String { String(cString: strerror(errno)) }
}
