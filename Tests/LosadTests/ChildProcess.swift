#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Child processes for the tests that drive the real executables: spawned with posix_spawn and
/// reaped with waitpid on threads of their own (Foundation's Process now and then loses the exit of
/// a child when many run at once), so no Swift concurrency thread ever blocks on one.
enum ChildProcess {
    struct Result {
        var status: Int32
        var output: String
        var error: String
    }

    /// Runs `executable` to its end; standard input is /dev/null.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> Result {
        try await onThread { try runBlocking(executable, arguments, environment: environment) }
    }

    /// Starts `executable` with standard output and error appended to `log` (and `inherit` mapped to
    /// descriptor 3, for socket activation); returns its pid.
    static func start(_ executable: String, _ arguments: [String], environment: [String: String], log: String,
                      inherit descriptor: Int32? = nil) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        if let descriptor { posix_spawn_file_actions_adddup2(&actions, descriptor, 3) }
        return try spawn(executable, arguments, environment: environment, actions: &actions)
    }

    /// The exit status of `pid` once it exits within `timeout` seconds (128 + signal when killed), else nil.
    static func wait(_ pid: pid_t, timeout: Double) async -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { return exitStatus(status) }
            if reaped < 0 && errno != EINTR { return nil }
            if Date() >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Runs blocking `work` on a new thread and returns its result.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Swift.Result { try work() }) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    // MARK: - Parts

    private static let spawnLock = NSLock()

    private static func spawn(_ executable: String, _ arguments: [String], environment: [String: String],
                              actions: inout posix_spawn_file_actions_t) throws -> pid_t {
        var variables = ProcessInfo.processInfo.environment
        // The test runner's own systemd variables are not the child's.
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "JOURNAL_STREAM"] {
            variables[name] = nil
        }
        variables.merge(environment) { $1 }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = variables.map { strdup("\($0)=\($1)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard spawned == 0 else { throw POSIXError(.init(rawValue: spawned) ?? .EIO) }
        return pid
    }

    private static func runBlocking(_ executable: String, _ arguments: [String], environment: [String: String]) throws -> Result {
        // Pipes are close-on-exec and made under one lock with the spawn, so that no other child
        // inherits a write end and holds a reader's end of file back.
        spawnLock.lock()
        var output: [Int32] = [0, 0], error: [Int32] = [0, 0]
        guard pipe(&output) == 0, pipe(&error) == 0 else { spawnLock.unlock(); throw POSIXError(.EMFILE) }
        for descriptor in output + error { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, error[1], 2)
        let pid: pid_t
        do {
            pid = try spawn(executable, arguments, environment: environment, actions: &actions)
        } catch let failure {
            (output + error).forEach { close($0) }
            spawnLock.unlock()
            throw failure
        }
        close(output[1])
        close(error[1])
        spawnLock.unlock()
        let errorText = Collected()
        let done = DispatchSemaphore(value: 0)
        let errorReader = error[0]
        Thread {
            errorText.data = readAll(errorReader)
            done.signal()
        }.start()
        let data = readAll(output[0])
        done.wait()
        close(output[0])
        close(error[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return Result(status: exitStatus(status), output: String(decoding: data, as: UTF8.self),
                      error: String(decoding: errorText.data, as: UTF8.self))
    }

    private static func exitStatus(_ status: Int32) -> Int32 {
        status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    private static func readAll(_ descriptor: Int32) -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            if count > 0 { data.append(buffer, count: count) } else if count < 0 && errno == EINTR { continue } else { break }
        }
        return data
    }

    /// Standard error as one thread read it for another (the semaphore orders the two).
    private final class Collected: @unchecked Sendable {
        var data = Data()
    }
}
