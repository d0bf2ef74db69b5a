#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A varlink client at the byte level (https://varlink.org: JSON objects ended by a NUL on a Unix
/// stream socket), to send what a well-behaved client never would. Blocking calls; the async ones
/// block a thread of their own.
final class WireClient: @unchecked Sendable {
    let descriptor: Int32
    private let lock = NSLock()
    private var isOpen = true
    /// Bytes received after the last complete message.
    private var pending: [UInt8] = []

    enum Received: Equatable, Sendable {
        case message(String)
        case closed
        case timedOut
    }

    struct Failure: Error, CustomStringConvertible {
        var call: String
        var answer: Received
        var description: String { "\(call): \(answer)" }
    }

    init(path: String) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            Glibc.close(descriptor)
            throw POSIXError(.init(rawValue: code) ?? .EIO)
        }
    }

    deinit { close() }

    /// Closes the socket once (a second close could hit a descriptor reused meanwhile).
    func close() {
        lock.lock()
        defer { lock.unlock() }
        if isOpen { Glibc.close(descriptor) }
        isOpen = false
    }

    /// Sends `bytes`; false when the peer is gone.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    @discardableResult
    func send(_ text: String, terminated: Bool = true) -> Bool { send(Array(text.utf8) + (terminated ? [0] : [])) }

    /// The next NUL-terminated message, or how the wait ended.
    func receiveBlocking(timeout: Double) -> Received {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            if let end = pending.firstIndex(of: 0) {
                let message = String(decoding: pending[..<end], as: UTF8.self)
                pending.removeSubrange(...end)
                return .message(message)
            }
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return .timedOut }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, Int32(remaining * 1000) + 1) == 0 { continue }
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return .closed }
            pending += buffer[0..<count]
        }
    }

    func receive(timeout: Double = 10) async throws -> Received {
        try await ChildProcess.onThread { self.receiveBlocking(timeout: timeout) }
    }

    /// Sends one message and waits for the next reply.
    func callBlocking(_ message: String, timeout: Double = 10) -> Received {
        guard send(message) else { return .closed }
        return receiveBlocking(timeout: timeout)
    }

    func call(_ message: String, timeout: Double = 10) async throws -> Received {
        try await ChildProcess.onThread { self.callBlocking(message, timeout: timeout) }
    }
}
