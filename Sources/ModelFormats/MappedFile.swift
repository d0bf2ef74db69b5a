#if canImport(Glibc)
import Glibc
#endif

/// A whole file mapped read-only into memory; the mapping lives as long as this object.
///
/// Checkpoints are read through mappings so that loading touches only the
/// pages it converts and never holds a second copy of the raw file.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    /// The file's bytes (empty for an empty file).
    public let bytes: UnsafeRawBufferPointer

    public init(path: String) throws {
        self.path = path
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ModelFormatError.io(file: path, operation: "open for reading", reason: String(cString: strerror(errno)))
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw ModelFormatError.io(file: path, operation: "stat", reason: String(cString: strerror(errno)))
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw ModelFormatError.io(file: path, operation: "map", reason: "not a regular file")
        }
        let size = Int(status.st_size)
        if size == 0 {
            self.bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), address != MAP_FAILED else {
            throw ModelFormatError.io(file: path, operation: "map \(size) bytes", reason: String(cString: strerror(errno)))
        }
        self.bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    public var count: Int { bytes.count }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
