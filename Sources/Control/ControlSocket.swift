#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the control server listens.
public enum ControlSocket: Sendable, Equatable {
    /// Create a Unix socket file at `path` with `mode` and `group` before it
    /// listens, so that no client ever reaches it with looser rights. A stale
    /// socket file nobody listens on is replaced; a live one or a file that is
    /// not a socket is an error.
    case path(String, mode: UInt32 = 0o660, group: UInt32? = nil)
    /// A socket that is already bound and listening, handed over by systemd
    /// socket activation (`LISTEN_FDS`; the first one is descriptor 3).
    case inherited(descriptor: Int32)
}

/// The control socket could not be set up.
public enum ControlSocketError: Error, Equatable, CustomStringConvertible {
    case pathTooLong(path: String, bytes: Int, limit: Int)
    case notASocket(path: String)
    case alreadyServed(path: String)
    case system(path: String, operation: String, errno: Int32)
    case unusableDescriptor(descriptor: Int32, reason: String)

    public var description: String {
        switch self {
        case .pathTooLong(let path, let bytes, let limit):
            return "socket path \(path) is \(bytes) bytes long; a Unix socket path holds at most \(limit)"
        case .notASocket(let path):
            return "\(path) exists and is not a socket; losad will not replace it"
        case .alreadyServed(let path):
            return "another process is already listening on \(path) (is losad running twice?)"
        case .system(let path, let operation, let code):
            return "\(operation) of socket \(path) failed: \(String(cString: strerror(code)))"
        case .unusableDescriptor(let descriptor, let reason):
            return "inherited descriptor \(descriptor) cannot serve: \(reason)"
        }
    }
}

/// A listening descriptor made ready for the server, and what to clean up.
struct PreparedSocket {
    var descriptor: Int32
    /// The socket file this process created, with its identity, to remove on exit.
    var createdFile: (path: String, device: UInt64, inode: UInt64)?
}

extension ControlSocket {
    /// The descriptor to serve: a new bound socket (NIO calls listen), or the inherited one.
    func prepare() throws(ControlSocketError) -> PreparedSocket {
        switch self {
        case .inherited(let descriptor):
            try Self.checkInherited(descriptor)
            return PreparedSocket(descriptor: descriptor, createdFile: nil)
        case .path(let path, let mode, let group):
            return try Self.create(path: path, mode: mode, group: group)
        }
    }

    private static func checkInherited(_ descriptor: Int32) throws(ControlSocketError) {
        var type: Int32 = 0, listening: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_TYPE, &type, &length) == 0 else {
            throw .unusableDescriptor(descriptor: descriptor, reason: "not a socket (\(String(cString: strerror(errno))))")
        }
        guard type == Int32(SOCK_STREAM.rawValue) else {
            throw .unusableDescriptor(descriptor: descriptor, reason: "not a stream socket (type \(type))")
        }
        length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening != 0 else {
            throw .unusableDescriptor(descriptor: descriptor, reason: "not listening (losad.socket should say ListenStream=)")
        }
    }

    private static func create(path: String, mode: UInt32, group: UInt32?) throws(ControlSocketError) -> PreparedSocket {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let limit = MemoryLayout.size(ofValue: address.sun_path) - 1
        let bytes = Array(path.utf8)
        guard bytes.count <= limit, !bytes.isEmpty else { throw .pathTooLong(path: path, bytes: bytes.count, limit: limit) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        try removeStale(path: path, address: address)

        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw .system(path: path, operation: "socket()", errno: errno) }
        func fail(_ operation: String) -> ControlSocketError {
            let code = errno
            close(descriptor)
            return .system(path: path, operation: operation, errno: code)
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw fail("bind()") }
        // Nobody can connect before listen(), so the rights set here are the
        // rights every client meets. lchown does not follow a symlink planted
        // at the path.
        guard chmod(path, mode_t(mode)) == 0 else { unlink(path); throw fail("chmod()") }
        if let group {
            guard lchown(path, uid_t.max, gid_t(group)) == 0 else { unlink(path); throw fail("chown()") }
        }
        var info = stat()
        guard lstat(path, &info) == 0 else { unlink(path); throw fail("stat()") }
        return PreparedSocket(descriptor: descriptor,
                              createdFile: (path, UInt64(info.st_dev), UInt64(info.st_ino)))
    }

    /// Removes a socket file left by a process that is gone: one that refuses
    /// connections. Anything else at the path stays and is an error.
    private static func removeStale(path: String, address: sockaddr_un) throws(ControlSocketError) {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw .system(path: path, operation: "stat()", errno: errno)
        }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else { throw .notASocket(path: path) }
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { throw .system(path: path, operation: "socket()", errno: errno) }
        defer { close(probe) }
        var address = address
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if connected == 0 { throw .alreadyServed(path: path) }
        guard errno == ECONNREFUSED else { throw .system(path: path, operation: "connect() probe", errno: errno) }
        guard unlink(path) == 0 || errno == ENOENT else { throw .system(path: path, operation: "unlink()", errno: errno) }
    }

    /// Removes the socket file this process created, if it is still the same file.
    static func removeCreatedFile(_ file: (path: String, device: UInt64, inode: UInt64)) {
        var info = stat()
        guard lstat(file.path, &info) == 0, UInt64(info.st_dev) == file.device, UInt64(info.st_ino) == file.inode else { return }
        unlink(file.path)
    }
}
