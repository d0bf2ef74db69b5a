#if canImport(Glibc)
import Glibc
#endif

/// What went wrong while watching or reading the inbox.
public enum InboxError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call on `path` failed; `reason` is strerror's sentence.
    case io(path: String, operation: String, reason: String)
    /// Hashing stopped because the watcher is stopping.
    case stopped(path: String)

    static func errno(_ path: String, _ operation: String, _ code: Int32 = Glibc.errno) -> InboxError {
        .io(path: path, operation: operation, reason: String(cString: strerror(code)))
    }

    public var description: String {
        switch self {
        case let .io(path, operation, reason): return "inbox: \(operation) \(path): \(reason)"
        case let .stopped(path): return "inbox: stopped while hashing \(path)"
        }
    }
}
