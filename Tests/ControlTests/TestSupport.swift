import Control
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A directory under /tmp removed when the value goes away; world-traversable,
/// so that a client running as another user can reach a socket in it.
final class TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        var template = Array("/tmp/losa-control-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        path = String(cString: made)
        chmod(path, 0o755)
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A control server on a temporary socket serving a fake daemon, for the length of `body`.
struct TestServer {
    let socketPath: String
    let server: ControlServer
    let service: FakeManagerService

    static let info = VarlinkServiceInfo(vendor: "losa", product: "losad", version: "0.1.0", url: "https://losa.io")

    static func with<Result>(
        configuration: ControlServer.Configuration = ControlServer.Configuration(idleTimeout: .seconds(5)),
        access: AccessPolicy = AccessPolicy(controlGroup: nil),
        mode: UInt32 = 0o666,
        service: FakeManagerService = FakeManagerService(),
        _ body: (TestServer) async throws -> Result
    ) async throws -> Result {
        let directory = try TemporaryDirectory()
        let path = directory.file("losad.sock")
        let server = try await ControlServer.bind(.path(path, mode: mode), service: service, access: access, info: info,
                                                  configuration: configuration)
        let running = Task { try await server.run() }
        let result: Result
        do {
            result = try await body(TestServer(socketPath: path, server: server, service: service))
        } catch {
            running.cancel()
            _ = await running.result
            throw error
        }
        running.cancel()
        try await running.value
        withExtendedLifetime(directory) {}
        return result
    }

    /// A typed client on a new connection.
    func withClient<Result: Sendable>(_ body: (ManagerClient) async throws -> Result) async throws -> Result {
        try await VarlinkClient.withConnection(socketPath: socketPath) { try await body(ManagerClient($0)) }
    }

    /// Waits until `condition` holds, for at most `seconds`.
    func eventually(_ seconds: Double = 3, _ condition: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }
}

/// A blocking POSIX client for bytes that a varlink client would never send.
/// Its waits run on a thread of their own: not on the Swift concurrency pool
/// the server needs, nor on GCD's, which that pool shares on Linux.
final class RawClient: @unchecked Sendable {
    let descriptor: Int32

    init(path: String) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            close()
            throw POSIXError(.init(rawValue: code) ?? .EIO)
        }
    }

    private let open = NSLock()
    private var isOpen = true

    /// Closes the socket once (a second close could close a descriptor the
    /// server has opened meanwhile under the same number).
    func close() {
        open.lock()
        defer { open.unlock() }
        if isOpen { Glibc.close(descriptor) }
        isOpen = false
    }

    deinit { close() }

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
    func send(_ text: String, terminated: Bool = true) -> Bool {
        send(Array(text.utf8) + (terminated ? [0] : []))
    }

    enum Received: Equatable {
        case message(String)
        case closed
        case timedOut
    }

    /// The next NUL-terminated message, or how the wait ended.
    func receive(timeout: Double) async -> Received {
        await withCheckedContinuation { continuation in
            onOwnThread {
                var collected: [UInt8] = []
                let deadline = Date().addingTimeInterval(timeout)
                while true {
                    let remaining = deadline.timeIntervalSinceNow
                    if remaining <= 0 { continuation.resume(returning: .timedOut); return }
                    var poller = pollfd(fd: self.descriptor, events: Int16(POLLIN), revents: 0)
                    let ready = poll(&poller, 1, Int32(remaining * 1000) + 1)
                    if ready == 0 { continue }
                    var byte: UInt8 = 0
                    let count = recv(self.descriptor, &byte, 1, 0)
                    if count <= 0 { continuation.resume(returning: .closed); return }
                    if byte == 0 {
                        continuation.resume(returning: .message(String(decoding: collected, as: UTF8.self)))
                        return
                    }
                    collected.append(byte)
                }
            }
        }
    }
}

/// Runs blocking `work` on a new thread, so it cannot starve the concurrency pool.
func onOwnThread(_ work: @escaping @Sendable () -> Void) {
    let thread = Thread(block: work)
    thread.stackSize = 1 << 20
    thread.start()
}

/// The outcome of a child process.
struct ProcessResult {
    var status: Int32
    var output: String
    var error: String
}

/// Runs `executable` to its end with posix_spawn and waitpid, on threads of
/// its own: standard output is read on one, standard error on another, so
/// neither pipe can fill up. (Foundation's Process loses the exit of a child
/// now and then when many run at once, and then waits forever.)
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> ProcessResult {
    try await withCheckedThrowingContinuation { continuation in
        onOwnThread {
            continuation.resume(with: Result { try spawnAndWait(executable, arguments, environment: environment) })
        }
    }
}

private func spawnAndWait(_ executable: String, _ arguments: [String], environment: [String: String]) throws -> ProcessResult {
    // Pipes are made close-on-exec and children spawned under one lock, so
    // that no other child inherits a write end and holds a reader's EOF back.
    spawnLock.lock()
    var output: [Int32] = [0, 0], error: [Int32] = [0, 0]
    guard pipe(&output) == 0 else { spawnLock.unlock(); throw POSIXError(.EMFILE) }
    guard pipe(&error) == 0 else {
        close(output[0])
        close(output[1])
        spawnLock.unlock()
        throw POSIXError(.EMFILE)
    }
    for descriptor in output + error { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, output[1], 1)
    posix_spawn_file_actions_adddup2(&actions, error[1], 2)
    let variables = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0)=\($1)" }
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = variables.map { strdup($0) } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
    close(output[1])
    close(error[1])
    spawnLock.unlock()
    guard spawned == 0 else {
        close(output[0])
        close(error[0])
        throw POSIXError(.init(rawValue: spawned) ?? .EIO)
    }
    let errorText = ErrorCollector()
    let done = DispatchSemaphore(value: 0)
    let errorReader = error[0]
    onOwnThread {
        errorText.data = readAll(errorReader)
        done.signal()
    }
    let data = readAll(output[0])
    done.wait()
    close(output[0])
    close(error[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return ProcessResult(status: exitStatus, output: String(decoding: data, as: UTF8.self),
                         error: String(decoding: errorText.data, as: UTF8.self))
}

private let spawnLock = NSLock()

/// Everything readable from `descriptor` until end of file.
private func readAll(_ descriptor: Int32) -> Data {
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = read(descriptor, &buffer, buffer.count)
        if count > 0 { data.append(buffer, count: count) } else if count < 0 && errno == EINTR { continue } else { break }
    }
    return data
}

/// Standard error as one thread read it for another (the semaphore orders the two).
private final class ErrorCollector: @unchecked Sendable {
    var data = Data()
}

enum TestEnvironment {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// The python with the PyPI `varlink` package: LOSAD_TEST_PYTHON, or the
    /// repository's .venv-test (scripts/python-env.sh makes it).
    static let python: String? = {
        if let python = ProcessInfo.processInfo.environment["LOSAD_TEST_PYTHON"], !python.isEmpty { return python }
        let venv = repositoryRoot + "/.venv-test/bin/python"
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : nil
    }()

    /// The varlink probe every python test runs.
    static let probe = repositoryRoot + "/scripts/varlink_probe.py"

    /// The built `losactl`, beside this test binary.
    static let losactl = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("losactl").path

    static let setpriv: String? = ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static var isRoot: Bool { getuid() == 0 }
}

/// `text` as a JSON object, or a test failure.
func jsonObject(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
}
