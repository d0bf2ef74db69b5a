#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Sockets systemd passed to the process (sd_listen_fds(3)): `$LISTEN_FDS` descriptors starting at
/// 3, meant for this process when `$LISTEN_PID` is its pid, named by `$LISTEN_FDNAMES` (colon-separated).
public enum SocketActivation {
    /// The first passed descriptor (SD_LISTEN_FDS_START).
    public static let firstDescriptor: Int32 = 3

    /// One passed descriptor.
    public struct PassedSocket: Sendable, Equatable {
        public var fd: Int32
        /// Its FileDescriptorName= (losad.socket's default is the unit name, "losad.socket").
        public var name: String?

        /// Whether it is a listening AF_UNIX stream socket, i.e. one losad can accept control connections on.
        public var isListeningUnixStream: Bool {
            var type: Int32 = 0, listening: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0, type == Int32(SOCK_STREAM.rawValue) else { return false }
            length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening == 1 else { return false }
            var address = sockaddr_storage()
            var addressLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let named = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &addressLength) }
            }
            return named == 0 && address.ss_family == sa_family_t(AF_UNIX)
        }
    }

    /// The descriptors passed to this process, marked close-on-exec; empty when none were (or they
    /// were meant for another process). With `unsetEnvironment`, the three variables are removed so
    /// that nothing started later mistakes them for its own.
    /// - Parameter firstDescriptor: 3 in production; tests pass their own range.
    public static func listenFDs(environment: [String: String] = ProcessInfo.processInfo.environment, pid: pid_t = getpid(),
                                 firstDescriptor: Int32 = SocketActivation.firstDescriptor,
                                 unsetEnvironment: Bool = false) throws -> [PassedSocket] {
        defer {
            if unsetEnvironment { for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(name) } }
        }
        guard let pidText = environment["LISTEN_PID"], let countText = environment["LISTEN_FDS"] else { return [] }
        guard let owner = pid_t(pidText), owner > 0 else {
            throw SystemdError.invalid(name: "LISTEN_PID", value: pidText, reason: "a process id")
        }
        guard owner == pid else { return [] }
        guard let count = Int32(countText), (0...4096).contains(count) else {
            throw SystemdError.invalid(name: "LISTEN_FDS", value: countText, reason: "a count of descriptors from 0 to 4096")
        }
        let names = environment["LISTEN_FDNAMES"].map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        if let names, names.count != Int(count) {
            throw SystemdError.invalid(name: "LISTEN_FDNAMES", value: environment["LISTEN_FDNAMES"]!,
                                       reason: "\(count) colon-separated names, one per descriptor in LISTEN_FDS")
        }
        var sockets: [PassedSocket] = []
        for index in 0..<count {
            let fd = firstDescriptor + index
            let flags = fcntl(fd, F_GETFD)
            guard flags >= 0 else { throw SystemdError.errno("fcntl(\(fd), F_GETFD) on a descriptor LISTEN_FDS promised") }
            guard fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0 else { throw SystemdError.errno("fcntl(\(fd), F_SETFD)") }
            sockets.append(PassedSocket(fd: fd, name: names?[Int(index)]))
        }
        return sockets
    }
}
