/// Why the daemon could not start.
public enum DaemonError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A configured folder could not be created.
    case folder(key: String, path: String, reason: String)

    public var description: String {
        switch self {
        case let .folder(key, path, reason): return "cannot create \(path) (\(key)): \(reason)"
        }
    }
}
