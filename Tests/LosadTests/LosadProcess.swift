#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// `losad run` as a child process with a temporary configuration, its folders and its control
/// socket in a fresh folder under /tmp (world-traversable, so that a client running as another user
/// can reach the socket). Stop it with `stop()`; the folder goes with the value.
final class LosadProcess: @unchecked Sendable {
    let root: String
    let socketPath: String
    let configPath: String
    let pid: pid_t

    static var losad: String { CommandTests.executable.path }
    static var losactl: String { CommandTests.executable.deletingLastPathComponent().appendingPathComponent("losactl").path }
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    /// The tiny Hugging Face LLaMA the transformer tests use (2 layers, hidden 32).
    static let tinyModel = repositoryRoot + "/Tests/TransformerTests/Fixtures/tiny-llama"
    static let text = repositoryRoot + "/Tests/TransformerTests/Fixtures/eval-text.txt"

    /// The python with the PyPI `varlink` package: LOSAD_TEST_PYTHON, or the repository's
    /// .venv-test (scripts/python-env.sh makes it).
    static let python: String? = {
        if let python = ProcessInfo.processInfo.environment["LOSAD_TEST_PYTHON"], !python.isEmpty { return python }
        let venv = repositoryRoot + "/.venv-test/bin/python"
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : nil
    }()
    static let probe = repositoryRoot + "/scripts/varlink_probe.py"
    static let setpriv: String? = ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// `[job]` keys for a real job that ends within seconds in a debug build: one window to
    /// calibrate and one to evaluate, pruning without recovery, on the fixture text.
    static let quickJob = """
        [job]
        recovery = "none"
        profile = "quick"
        iterations = 1
        calibration_windows = 1
        training_samples = 1
        evaluation_windows = 1
        calibration_corpus = "\(text)"
        evaluation_corpus = "\(text)"
        """

    /// Starts the daemon and waits until its socket answers.
    /// - Parameters:
    ///   - control: the `[control]` keys after `socket` (mode, group).
    ///   - inheriting: a listening socket handed over as descriptor 3 with LISTEN_FDS=1 (socket activation).
    init(job: String = LosadProcess.quickJob, control: String = "socket_group = \"\"", inheriting listener: Int32? = nil,
         answeringAt answerPath: String? = nil) async throws {
        var template = Array("/tmp/losad-control-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        root = String(cString: made)
        chmod(root, 0o755)
        socketPath = root + "/losad.sock"
        configPath = root + "/losad.toml"
        try """
            [folders]
            inbox = "inbox"
            outbox = "outbox"
            state = "state"
            \(job)
            [watch]
            settle_seconds = 0.2
            rescan_seconds = 5
            [control]
            socket = "losad.sock"
            \(control)
            [service]
            stop_timeout_seconds = 5
            """.write(toFile: configPath, atomically: true, encoding: .utf8)
        if let listener {
            // LISTEN_PID must be the daemon's own pid: the shell sets it to its pid, then becomes losad.
            pid = try ChildProcess.start("/bin/sh", ["-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" run --config \"$1\"",
                                                     Self.losad, configPath],
                                         environment: [:], log: root + "/losad.log", inherit: listener)
        } else {
            pid = try ChildProcess.start(Self.losad, ["run", "--config", configPath], environment: [:], log: root + "/losad.log")
        }
        let path = answerPath ?? socketPath
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let client = try? WireClient(path: path) {
                let answer = try await client.call(#"{"method":"io.losa.Manager.Ping"}"#)
                client.close()
                if answer == .message(#"{"parameters":{}}"#) { return }
            }
            if kill(pid, 0) != 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(pid, SIGKILL)
        _ = await ChildProcess.wait(pid, timeout: 5)
        throw DaemonDidNotStart(log: log)
    }

    struct DaemonDidNotStart: Error, CustomStringConvertible {
        var log: String
        var description: String { "losad run did not answer on its socket:\n\(log)" }
    }

    /// What the daemon wrote to standard error so far.
    var log: String { (try? String(contentsOfFile: root + "/losad.log", encoding: .utf8)) ?? "" }

    /// The daemon's resident memory (VmRSS of /proc/PID/status), in KiB.
    var residentKiB: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
    }

    /// SIGTERM, then the exit status (nil when it did not exit within 10 s; it is killed then).
    @discardableResult
    func stop() async -> Int32? {
        kill(pid, SIGTERM)
        if let status = await ChildProcess.wait(pid, timeout: 10) { return status }
        kill(pid, SIGKILL)
        _ = await ChildProcess.wait(pid, timeout: 5)
        return nil
    }

    /// Runs `losactl` against this daemon.
    func losactl(_ arguments: String...) async throws -> ChildProcess.Result {
        try await ChildProcess.run(Self.losactl, arguments, environment: ["LOSAD_SOCKET": socketPath])
    }

    /// Calls one method on a fresh connection and returns the reply as a JSON object.
    func call(_ method: String, _ parameters: String = "{}") async throws -> [String: Any] {
        let client = try WireClient(path: socketPath)
        defer { client.close() }
        let answer = try await client.call(#"{"method":"\#(method)","parameters":\#(parameters)}"#)
        guard case .message(let text) = answer else { throw WireClient.Failure(call: method, answer: answer) }
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
    }

    /// Polls `condition` as a task until it holds or `timeout` passes.
    static func eventually(timeout: Double = 10, _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return try await condition()
    }

    deinit {
        if kill(pid, 0) == 0 {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        try? FileManager.default.removeItem(atPath: root)
    }
}
