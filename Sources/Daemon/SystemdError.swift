#if canImport(Glibc)
import Glibc
#endif

/// A systemd interface (notify socket, passed file descriptors, journal) that could not be used.
public enum SystemdError: Error, Equatable, Sendable, CustomStringConvertible {
    /// An environment variable systemd sets holds something unusable.
    case invalid(name: String, value: String, reason: String)
    /// A system call failed.
    case system(operation: String, reason: String)

    static func errno(_ operation: String) -> SystemdError {
        .system(operation: operation, reason: String(cString: strerror(Glibc.errno)))
    }

    public var description: String {
        switch self {
        case let .invalid(name, value, reason): return "systemd: \(name)=\(value) is not usable; expected \(reason)"
        case let .system(operation, reason): return "systemd: \(operation) failed: \(reason)"
        }
    }
}
