#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Ledger
import Testing

/// Whole jobs through the real `losad run`: the tiny LLaMA folder dropped into the inbox, small budgets so a
/// job takes seconds. Each test has its own folders, configuration and daemon processes.
@Suite(.serialized) struct DaemonJobTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let tinyModel = repository.appendingPathComponent("Tests/TransformerTests/Fixtures/tiny-llama").path
    static let text = repository.appendingPathComponent("Tests/TransformerTests/Fixtures/eval-text.txt").path

    /// The budgets of every job here; `losad compress` takes the same as flags.
    static let budget: [(key: String, flag: String, value: String)] = [
        ("iterations", "--iterations", "3"), ("calibration_windows", "--calibration-windows", "4"),
        ("training_samples", "--training-samples", "40"), ("evaluation_windows", "--eval-windows", "4"),
        ("calibration_length", "--calibration-length", "32"), ("training_length", "--training-length", "32"),
        ("evaluation_length", "--eval-length", "64"),
    ]

    /// A folder with inbox/outbox/state and a configuration for them.
    struct Setup {
        let root: String
        var inbox: String { root + "/inbox" }
        var outbox: String { root + "/outbox" }
        var config: String { root + "/losad.toml" }

        init(recovery: String = "losa", memoryLimit: String = "auto", settle: Double = 0.3) throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("losad-job-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: root + "/inbox", withIntermediateDirectories: true)
            let budget = DaemonJobTests.budget.map { "\($0.key) = \($0.value)" }.joined(separator: "\n")
            try """
                [folders]
                inbox = "inbox"
                outbox = "outbox"
                state = "state"
                [job]
                profile = "quick"
                recovery = "\(recovery)"
                calibration_corpus = "\(DaemonJobTests.text)"
                evaluation_corpus = "\(DaemonJobTests.text)"
                \(budget)
                [scheduler]
                memory_limit = "\(memoryLimit)"
                [watch]
                settle_seconds = \(settle)
                rescan_seconds = 1
                [control]
                socket = "losad.sock"
                socket_group = ""
                [service]
                stop_timeout_seconds = 10
                """.write(toFile: config, atomically: true, encoding: .utf8)
        }

        /// The daemon's ledger, once a daemon has finished setting it up (opening it runs the migrations, which must
        /// not race the daemon's own): call after `Daemon.ready()`.
        func ledger() throws -> Ledger { try Ledger.open(path: root + "/state/losad.sqlite") }

        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    /// `losad run` on a setup, standard error collected into a file.
    final class Daemon {
        let process = Process()
        let log: String

        init(_ setup: Setup, name: String = "daemon", environment: [String: String] = [:]) throws {
            log = setup.root + "/\(name).log"
            FileManager.default.createFile(atPath: log, contents: nil)
            process.executableURL = CommandTests.executable
            process.arguments = ["run", "--config", setup.config]
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            try process.run()
        }

        var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        /// Waits for the daemon's "ready" line: its ledger is open and migrated, its socket listening.
        func ready() async throws {
            #expect(try await DaemonJobTests.wait(timeout: 30) { output.contains(" ready;") }, "\(output)")
        }

        /// SIGTERM, then the seconds until it exited (polled, so the test's thread stays free).
        func stop() async throws -> Double {
            let start = Date()
            process.terminate()
            _ = try await DaemonJobTests.wait(timeout: 30) { !process.isRunning }
            return Date().timeIntervalSince(start)
        }

        func kill9() async throws {
            kill(process.processIdentifier, SIGKILL)
            _ = try await DaemonJobTests.wait(timeout: 30) { !process.isRunning }
        }

        deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
    }

    /// Polls with Task.sleep: the tests run on Swift concurrency's few threads, which must not be blocked
    /// (on 2 cores there are 2 of them, shared with every other suite).
    static func wait(timeout: Double, _ condition: () throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? condition()) == true { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try condition()
    }

    /// `losad ARGUMENTS` to its end, polled; its status and standard error.
    static func losad(_ arguments: [String]) async throws -> (status: Int32, error: String) {
        let process = Process()
        process.executableURL = CommandTests.executable
        process.arguments = arguments
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("losad-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        _ = try await wait(timeout: 300) { !process.isRunning }
        return (process.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    /// Copies the tiny model into the inbox under a hidden name, then renames it in: a complete drop.
    static func drop(into inbox: String, as name: String = "tiny-llama") throws {
        let staging = inbox + "/.\(name).partial"
        try FileManager.default.copyItem(atPath: tinyModel, toPath: staging)
        #expect(rename(staging, inbox + "/" + name) == 0)
    }

    static func job(_ ledger: Ledger) throws -> JobRecord? { try ledger.jobs().first }

    @Test func aDroppedModelBecomesAFinishedJobWithItsOutputReportAndLedgerRows() async throws {
        let setup = try Setup()
        defer { setup.remove() }
        let daemon = try Daemon(setup)
        try await daemon.ready()
        try Self.drop(into: setup.inbox)
        let ledger = try setup.ledger()
        #expect(try await Self.wait(timeout: 180) { try Self.job(ledger)?.state.isFinal == true }, "\(daemon.output)")
        let job = try #require(try Self.job(ledger))
        #expect(job.state == .succeeded, "\(job.error ?? "") \(daemon.output)")
        let output = try #require(job.outputPath)
        #expect(output.hasPrefix(setup.outbox + "/"))
        #expect(FileManager.default.fileExists(atPath: output + "/model.safetensors"))
        let report = (output as NSString).deletingLastPathComponent + "/report.json"
        #expect(FileManager.default.fileExists(atPath: report))
        // The report names the published model, not the hidden folder the job wrote into.
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any])
        #expect((json["output"] as? [String: Any])?["path"] as? String == output)
        let details = try #require(try ledger.details(job: job.id!))
        #expect(details.layerStatistics.count == 3 * 2)   // 3 iterations × 2 layers
        #expect(details.metrics.contains { $0.name == "sparsity" && abs($0.value - 0.5) < 0.01 })
        #expect(details.metrics.contains { $0.name.hasPrefix("perplexity.final.") })
        // Both outputs are published: the sparse file beside the folder, measured on this machine.
        let sparse = output + ".sparse.gguf"
        #expect(FileManager.default.fileExists(atPath: sparse))
        #expect((json["sparseOutput"] as? [String: Any])?["path"] as? String == sparse)
        for name in ["output.sparse.bytes", "decode.input", "decode.sparse"] {
            #expect(details.metrics.contains { $0.name == name && $0.value > 0 }, "metric \(name)")
        }
        #expect(details.metrics.contains { $0.name.hasPrefix("perplexity.sparse.") })
        #expect(FileManager.default.fileExists(atPath: setup.inbox + "/tiny-llama/model.safetensors"), "the input stays")
        #expect(try await daemon.stop() < 10)
    }

    @Test func aModelCopiedSlowlyIsTakenOnlyOnceComplete() async throws {
        let setup = try Setup(recovery: "none", settle: 1)
        defer { setup.remove() }
        let daemon = try Daemon(setup)
        try await daemon.ready()
        let folder = setup.inbox + "/slow-llama"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for name in ["config.json", "tokenizer.json"] {
            try FileManager.default.copyItem(atPath: Self.tinyModel + "/" + name, toPath: folder + "/" + name)
        }
        // The weights arrive in 8 pieces over about 3.5 s, longer than the settle time between any two.
        let weights = try Data(contentsOf: URL(fileURLWithPath: Self.tinyModel + "/model.safetensors"))
        FileManager.default.createFile(atPath: folder + "/model.safetensors", contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: folder + "/model.safetensors"))
        let piece = (weights.count + 7) / 8
        for start in stride(from: 0, to: weights.count, by: piece) {
            try handle.write(contentsOf: weights[start..<min(start + piece, weights.count)])
            try handle.synchronize()
            try await Task.sleep(for: .milliseconds(500))
        }
        try handle.close()
        let ledger = try setup.ledger()
        #expect(try await Self.wait(timeout: 120) { try Self.job(ledger)?.state.isFinal == true }, "\(daemon.output)")
        let jobs = try ledger.jobs()
        #expect(jobs.count == 1 && jobs[0].state == .succeeded, "\(jobs.map { "\($0.state) \($0.error ?? "")" })")
        #expect(try await daemon.stop() < 10)
    }

    @Test func aJobOverTheMemoryLimitIsRefusedWithItsReason() async throws {
        let setup = try Setup(memoryLimit: "64M")
        defer { setup.remove() }
        let daemon = try Daemon(setup)
        try await daemon.ready()
        try Self.drop(into: setup.inbox)
        let ledger = try setup.ledger()
        #expect(try await Self.wait(timeout: 60) { try Self.job(ledger)?.state == .refused }, "\(daemon.output)")
        let reason = try #require(try Self.job(ledger)?.error)
        #expect(reason.contains("scheduler.memory_limit") && reason.contains("needs an estimated"), "\(reason)")
        #expect(try await daemon.stop() < 10)
    }

    /// SIGTERM in the middle of the LoSA loop checkpoints and exits inside the stop timeout; `kill -9` later
    /// loses at most the iteration in progress; each restart resumes, and the result is bit for bit that of
    /// `losad compress` with the same settings, run without interruption.
    @Test func stopsAndCrashesResumeToTheUninterruptedResult() async throws {
        let setup = try Setup()
        defer { setup.remove() }
        let reference = setup.root + "/reference"
        let compress = try await Self.losad(["compress", Self.tinyModel, "--out", reference, "--calib", Self.text,
                                             "--eval", Self.text] + Self.budget.flatMap { [$0.flag, $0.value] })
        #expect(compress.status == 0, "\(compress.error)")

        var daemon = try Daemon(setup, name: "first")
        try await daemon.ready()

        try await daemon.ready()
        try Self.drop(into: setup.inbox)
        let ledger = try setup.ledger()
        // Stop once the first iteration's checkpoint is recorded.
        #expect(try await Self.wait(timeout: 120) { try Self.job(ledger)?.checkpointPath != nil }, "\(daemon.output)")
        let seconds = try await daemon.stop()
        #expect(seconds < 10, "stopped after \(seconds) s; the stop timeout is 10 s")
        #expect(daemon.process.terminationStatus == 0, "\(daemon.output)")
        let interrupted = try #require(try Self.job(ledger))
        #expect(interrupted.state == .queued && interrupted.attempts == 1, "\(interrupted)")

        // Second start: resumes; killed without warning once it has got further.
        daemon = try Daemon(setup, name: "second")
        try await daemon.ready()
        #expect(try await Self.wait(timeout: 120) {
            let job = try Self.job(ledger)
            return job?.state == .running && job?.attempts == 2 && (job?.iteration ?? 0) >= 2
        }, "\(daemon.output)")
        try await daemon.kill9()

        // Third start: finds the job it was running, resumes and finishes.
        daemon = try Daemon(setup, name: "third")
        try await daemon.ready()
        #expect(try await Self.wait(timeout: 180) { try Self.job(ledger)?.state.isFinal == true }, "\(daemon.output)")
        let job = try #require(try Self.job(ledger))
        #expect(job.state == .succeeded && job.attempts == 3, "\(job.error ?? "") \(daemon.output)")
        let produced = try Data(contentsOf: URL(fileURLWithPath: try #require(job.outputPath) + "/model.safetensors"))
        let expected = try Data(contentsOf: URL(fileURLWithPath: reference + "/tiny-llama-losa-50/model.safetensors"))
        #expect(produced == expected)
        #expect(try await daemon.stop() < 10)
    }
}
