#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Ledger
import Synchronization
import Testing
@testable import Daemon

/// `losad run` as systemd runs it: the real executable, a temporary configuration, and a
/// NOTIFY_SOCKET datagram socket this test created and reads.
@Suite struct DaemonProcessTests {
    /// Binds a datagram socket and collects what arrives on a thread of its own.
    final class NotifySocket: Sendable {
        let path: String
        private let fd: Int32
        private let received = Mutex<[(message: String, at: Double)]>([])
        private let done = DispatchSemaphore(value: 0)
        private let closing = Atomic<Bool>(false)

        init(path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var (address, length) = try SystemdNotifier.socketAddress(path)
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            guard bound == 0 else { throw SystemdError.system(operation: "bind \(path)", reason: String(cString: strerror(errno))) }
            var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            Thread { [self] in
                var buffer = [UInt8](repeating: 0, count: 4096)
                while !closing.load(ordering: .acquiring) {
                    let count = recv(fd, &buffer, buffer.count, 0)
                    if count > 0 {
                        let message = String(decoding: buffer[0..<count], as: UTF8.self)
                        received.withLock { $0.append((message, MonotonicClock.seconds())) }
                    }
                }
                done.signal()
            }.start()
        }

        var messages: [String] { received.withLock { $0.map(\.message) } }

        func close() {
            closing.store(true, ordering: .releasing)
            done.wait()
            Glibc.close(fd)
            unlink(path)
        }
    }

    /// Polls as a task, so that tests running beside this one keep the Swift concurrency threads.
    static func wait(timeout: Double, _ condition: () throws -> Bool) async rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return try condition()
    }

    @Test("a malformed model dropped into the inbox becomes a failed job with a readable error while the daemon goes on; systemd hears READY, STATUS, WATCHDOG, RELOADING on SIGHUP and, after SIGTERM, STOPPING, in order")
    func systemdLifecycle() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("losad-run-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try """
            [folders]
            inbox = "inbox"
            outbox = "outbox"
            state = "state"
            [watch]
            settle_seconds = 0.2
            rescan_seconds = 1
            [control]
            socket = "losad.sock"
            socket_group = ""
            [service]
            stop_timeout_seconds = 5
            """.write(toFile: root + "/losad.toml", atomically: true, encoding: .utf8)
        let notify = try NotifySocket(path: root + "/notify.sock")
        defer { notify.close() }

        // WATCHDOG_PID must be the daemon's own pid: the shell sets it to its pid, then becomes losad.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\"", CommandTests.executable.path, root + "/losad.toml"]
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = notify.path
        environment["WATCHDOG_USEC"] = "400000"   // pings every 0.2 s
        environment["LOSAD_LOG_LEVEL"] = "info"
        process.environment = environment
        let standardError = Pipe()
        process.standardError = standardError
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        #expect(await Self.wait(timeout: 10) { notify.messages.contains { $0.hasPrefix("READY=1") } }, "\(notify.messages)")
        let inbox = root + "/inbox"
        try Data("GGUF\u{3}\0\0\0 not really a model".utf8).write(to: URL(fileURLWithPath: inbox + "/.broken.gguf.part"))
        #expect(rename(inbox + "/.broken.gguf.part", inbox + "/broken.gguf") == 0)

        let ledger = try Ledger.open(path: root + "/state/losad.sqlite")
        #expect(try await Self.wait(timeout: 10) { try ledger.jobs(in: [.failed]).count == 1 })
        let failed = try #require(try ledger.jobs(in: [.failed]).first)
        let error = try #require(failed.error)
        #expect(error.hasPrefix("cannot read the model: \(inbox)/broken.gguf: "), "\(error)")
        #expect(failed.attempts == 0 && failed.inputPath == inbox + "/broken.gguf")

        // Still serving: another bad drop is taken too.
        try Data("not even GGUF".utf8).write(to: URL(fileURLWithPath: inbox + "/other.gguf"))
        #expect(try await Self.wait(timeout: 10) { try ledger.jobs(in: [.failed]).count == 2 })
        #expect(await Self.wait(timeout: 5) { notify.messages.filter { $0 == "WATCHDOG=1" }.count >= 2 })
        #expect(FileManager.default.fileExists(atPath: inbox + "/broken.gguf"), "the input is never removed")

        // SIGHUP: RELOADING=1, the file read again, READY=1.
        kill(process.processIdentifier, SIGHUP)
        #expect(await Self.wait(timeout: 5) {
            guard let reloading = notify.messages.firstIndex(where: { $0.hasPrefix("RELOADING=1\nMONOTONIC_USEC=") }) else { return false }
            return notify.messages[(reloading + 1)...].contains { $0.hasPrefix("READY=1") }
        }, "\(notify.messages)")

        let stopAsked = Date()
        process.terminate()   // SIGTERM
        #expect(await Self.wait(timeout: 10) { !process.isRunning })
        let stopSeconds = Date().timeIntervalSince(stopAsked)
        let log = String(decoding: standardError.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(log)")
        #expect(stopSeconds < 4, "stopped after \(stopSeconds) s; the stop timeout is 5 s")
        #expect(log.contains("received SIGTERM") && log.contains("stopped") && log.contains("reloaded; nothing changed"), "\(log)")

        try await Task.sleep(for: .milliseconds(100))
        let messages = notify.messages
        let ready = try #require(messages.firstIndex { $0.hasPrefix("READY=1") })
        let status = try #require(messages.firstIndex { $0.hasPrefix("STATUS=") })
        let watchdog = try #require(messages.firstIndex { $0 == "WATCHDOG=1" })
        let stopping = try #require(messages.firstIndex { $0.hasPrefix("STOPPING=1") })
        #expect(ready == 0 && ready < status && ready < watchdog && status < stopping && watchdog < stopping, "\(messages)")
        #expect(messages[ready].contains("STATUS=idle; 0 queued"))
        #expect(messages.contains("STATUS=idle; 0 queued; last: job 1 (broken) failed"), "\(messages)")
        #expect(messages.allSatisfy { $0.hasPrefix("READY=1") || $0.hasPrefix("STATUS=") || $0 == "WATCHDOG=1" || $0.hasPrefix("STOPPING=1")
                                      || $0.hasPrefix("RELOADING=1") },
                "\(messages)")
    }

    @Test("an invalid configuration stops `losad run` at once with exit status 78 and a sentence naming the key")
    func invalidConfiguration() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("losad-run-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "[scheduler]\nrunning_jobs = 0\n".write(toFile: root + "/losad.toml", atomically: true, encoding: .utf8)
        let result = try CommandTests.run(["run", "--config", root + "/losad.toml"])
        #expect(result.status == 78)
        #expect(result.error.contains("scheduler.running_jobs = 0 is not allowed; expected a whole number of jobs from 1 to 64"), "\(result.error)")
    }
}
