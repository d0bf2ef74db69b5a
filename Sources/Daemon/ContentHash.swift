#if canImport(Glibc)
import Glibc
#endif

/// The identity of a dropped model: the SHA-256 of its bytes, read in chunks (never the whole file).
///
/// A Hugging Face folder hashes as one stream of its files in byte order of their names, each as
/// its name, a NUL byte, its size as 8 little-endian bytes, then its bytes — so a renamed, added or
/// changed file changes the identity, and two files' bytes cannot be shifted into each other.
public enum ContentHash {
    /// Bytes read per `read` call.
    static let chunkSize = 1 << 20

    /// Hex SHA-256 of the file at `path`; `shouldStop` is asked between chunks.
    public static func file(_ path: String, shouldStop: () -> Bool = { false }) throws -> String {
        var hasher = SHA256()
        try feed(path, into: &hasher, shouldStop: shouldStop)
        return SHA256.hex(hasher.finalize())
    }

    /// Hex SHA-256 of the files `names` (plain names) inside `folder`, as described above.
    public static func folder(_ folder: String, files names: [String], shouldStop: () -> Bool = { false }) throws -> String {
        var hasher = SHA256()
        for name in names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            let path = folder + "/" + name
            var info = stat()
            guard stat(path, &info) == 0 else { throw InboxError.errno(path, "stat") }
            var header = Array(name.utf8) + [0]
            withUnsafeBytes(of: UInt64(info.st_size).littleEndian) { header += $0 }
            hasher.update(header)
            let read = try feed(path, into: &hasher, shouldStop: shouldStop)
            guard read == Int(info.st_size) else {
                throw InboxError.io(path: path, operation: "hash", reason: "it changed size while being read (\(info.st_size) → \(read) bytes)")
            }
        }
        return SHA256.hex(hasher.finalize())
    }

    /// Streams the file into `hasher`; returns the bytes read.
    @discardableResult
    static func feed(_ path: String, into hasher: inout SHA256, shouldStop: () -> Bool) throws -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw InboxError.errno(path, "open") }
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 64)
        defer { buffer.deallocate() }
        var total = 0
        while true {
            if shouldStop() { throw InboxError.stopped(path: path) }
            let count = read(fd, buffer.baseAddress, chunkSize)
            if count < 0 {
                if errno == EINTR { continue }
                throw InboxError.errno(path, "read")
            }
            if count == 0 { return total }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            total += count
        }
    }
}
