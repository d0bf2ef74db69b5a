#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import Daemon

/// A datagram socket the test owns, standing in for systemd's notify socket.
final class DatagramReceiver {
    let fd: Int32
    let name: String

    /// Binds a path socket in a temporary folder, or an abstract one when `abstract`.
    init(abstract: Bool = false) throws {
        name = abstract ? "@losad-test-\(UUID().uuidString)"
                        : FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString).sock").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var (address, length) = try SystemdNotifier.socketAddress(name)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { throw SystemdError.errno("bind \(name)") }
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(fd)
        if !name.hasPrefix("@") { unlink(name) }
    }

    /// The next datagram, or nil after `seconds` without one.
    func receive(within seconds: Int = 3) -> String? {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        return count >= 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : nil
    }

    /// Datagrams already waiting, without blocking.
    func drain() -> [String] {
        var messages: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            guard count >= 0 else { return messages }
            messages.append(String(decoding: buffer[0..<count], as: UTF8.self))
        }
    }
}

@Suite("SystemdNotifier")
struct SystemdNotifierTests {
    @Test("a socket the test created receives READY, STATUS, WATCHDOG, RELOADING and STOPPING in order", arguments: [false, true])
    func lifecycle(abstract: Bool) throws {
        let receiver = try DatagramReceiver(abstract: abstract)
        let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.name]))
        #expect(notifier.ready(status: "idle, 0 jobs queued"))
        #expect(notifier.status("job 7: losa iteration 2/5, 41%\nsecond line"))
        #expect(notifier.watchdog())
        let before = SystemdNotifier.monotonicMicroseconds()
        #expect(notifier.reloading())
        let after = SystemdNotifier.monotonicMicroseconds()
        #expect(notifier.stopping(status: "checkpointing job 7"))
        #expect(receiver.receive() == "READY=1\nSTATUS=idle, 0 jobs queued")
        #expect(receiver.receive() == "STATUS=job 7: losa iteration 2/5, 41% second line")
        #expect(receiver.receive() == "WATCHDOG=1")
        let reloading = try #require(receiver.receive()).split(separator: "\n")
        #expect(reloading.first == "RELOADING=1")
        let stamp = try #require(reloading.last.flatMap { UInt64($0.dropFirst("MONOTONIC_USEC=".count)) })
        #expect(reloading.last?.hasPrefix("MONOTONIC_USEC=") == true && (before...after).contains(stamp))
        #expect(receiver.receive() == "STOPPING=1\nSTATUS=checkpointing job 7")
    }

    @Test("without a usable NOTIFY_SOCKET there is no notifier, and a vanished socket does not crash a send")
    func absent() throws {
        #expect(SystemdNotifier(environment: [:]) == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]) == nil)
        #expect(throws: SystemdError.self) { try SystemdNotifier(socketPath: "/" + String(repeating: "x", count: 200)) }
        let notifier = try SystemdNotifier(socketPath: "/nonexistent/notify.sock")
        #expect(!notifier.ready())
        #expect(!notifier.watchdog())
    }

    @Test("the watchdog interval is half of WATCHDOG_USEC, only for the process WATCHDOG_PID names")
    func watchdogInterval() {
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000"], pid: 42) == 15)
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"], pid: 42) == 15)
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "43"], pid: 42) == nil)
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "soon"], pid: 42) == nil)
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "0"], pid: 42) == nil)
        #expect(SystemdNotifier.watchdogInterval(environment: [:], pid: 42) == nil)
    }

    @Test("the watchdog thread keeps pinging while every Swift concurrency thread is busy, and stops when told")
    func watchdogUnderLoad() async throws {
        let receiver = try DatagramReceiver()
        let notifier = try SystemdNotifier(socketPath: receiver.name)
        #expect(notifier.startWatchdog(interval: nil) == nil)
        let watchdog = try #require(notifier.startWatchdog(interval: 0.05))
        // Saturate the cooperative pool (one thread per core) with spinning tasks for 0.5 s.
        let start = Date()
        await withTaskGroup(of: Int.self) { group in
            for _ in 0..<(2 * ProcessInfo.processInfo.activeProcessorCount) {
                group.addTask {
                    var spins = 0
                    while Date().timeIntervalSince(start) < 0.5 { spins &+= 1 }
                    return spins
                }
            }
            for await _ in group {}
        }
        let pings = receiver.drain()
        watchdog.stop()
        // 0.5 s at 0.05 s is ~11 pings; half of them is proof enough that nothing starved the thread.
        #expect(pings.count >= 5 && pings.allSatisfy { $0 == "WATCHDOG=1" }, "\(pings.count) pings")
        _ = receiver.drain()
        try await Task.sleep(for: .milliseconds(150))
        #expect(receiver.drain().isEmpty)
        watchdog.stop()   // twice is harmless
    }
}

@Suite("SocketActivation")
struct SocketActivationTests {
    /// A listening AF_UNIX stream socket and a datagram socket moved to descriptors `base` and `base + 1`.
    func passSockets(at base: Int32) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("listen-\(UUID().uuidString).sock").path
        let stream = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var (address, length) = try SystemdNotifier.socketAddress(path)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stream, $0, length) } }
        #expect(bound == 0 && listen(stream, 4) == 0)
        let datagram = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(dup2(stream, base) == base && dup2(datagram, base + 1) == base + 1)
        close(stream)
        close(datagram)
        return path
    }

    @Test("passed descriptors are found with their names, marked close-on-exec, and the listener recognised")
    func passed() throws {
        let base: Int32 = 700
        let path = try passSockets(at: base)
        defer { close(base); close(base + 1); unlink(path) }
        let environment = ["LISTEN_PID": "\(getpid())", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "varlink:extra"]
        let sockets = try SocketActivation.listenFDs(environment: environment, firstDescriptor: base)
        #expect(sockets == [.init(fd: base, name: "varlink"), .init(fd: base + 1, name: "extra")])
        #expect(fcntl(base, F_GETFD) & FD_CLOEXEC != 0 && fcntl(base + 1, F_GETFD) & FD_CLOEXEC != 0)
        #expect(sockets[0].isListeningUnixStream)
        #expect(!sockets[1].isListeningUnixStream)
        // Meant for another process, or not passed at all: none.
        #expect(try SocketActivation.listenFDs(environment: environment, pid: getpid() + 1, firstDescriptor: base).isEmpty)
        #expect(try SocketActivation.listenFDs(environment: [:], firstDescriptor: base).isEmpty)
        // Inconsistent variables are errors naming the variable.
        #expect(throws: SystemdError.invalid(name: "LISTEN_FDNAMES", value: "a", reason: "2 colon-separated names, one per descriptor in LISTEN_FDS")) {
            try SocketActivation.listenFDs(environment: ["LISTEN_PID": "\(getpid())", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a"], firstDescriptor: base)
        }
        #expect(throws: SystemdError.self) {
            try SocketActivation.listenFDs(environment: ["LISTEN_PID": "\(getpid())", "LISTEN_FDS": "-1"], firstDescriptor: base)
        }
        #expect(throws: SystemdError.self) {   // descriptor 702 was never opened
            try SocketActivation.listenFDs(environment: ["LISTEN_PID": "\(getpid())", "LISTEN_FDS": "3"], firstDescriptor: base)
        }
    }
}

@Suite("SystemdNotifier when nobody reads")
struct SystemdNotifierBackPressureTests {
    @Test("STATUS lines to a receiver that has stopped reading are dropped at once instead of blocking the sender")
    func statusNeverBlocks() throws {
        let receiver = try DatagramReceiver()
        let notifier = try SystemdNotifier(socketPath: receiver.name)
        let began = Date()
        let sent = (0..<200).map { notifier.status("line \($0)") }
        #expect(Date().timeIntervalSince(began) < 0.5)
        #expect(sent.first == true && sent.last == false, "the receiver's queue fills and later lines are dropped")
        #expect(receiver.drain().first == "STATUS=line 0")
    }
}
