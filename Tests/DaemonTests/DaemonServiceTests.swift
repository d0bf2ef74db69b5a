#if canImport(Glibc)
import Glibc
#endif
import Compression
import Foundation
import Ledger
import Synchronization
import Testing
@testable import Daemon

/// A control endpoint that only records how the daemon drives it.
final class RecordingEndpoint: ControlEndpoint {
    let calls = Mutex<[String]>([])

    func start(manager: Manager, configuration: DaemonConfig.Control, passedSockets: [SocketActivation.PassedSocket]) throws {
        let ready = (try? manager.status()) != nil
        calls.withLock { $0.append("start \(configuration.socketPath) passed=\(passedSockets.count) status=\(ready)") }
    }

    func stop() { calls.withLock { $0.append("stop") } }
}

/// The daemon in this process, on a configuration in a temporary folder, with the fake runner.
final class ServiceHarness: @unchecked Sendable {
    let root: URL
    let receiver: DatagramReceiver
    let endpoint = RecordingEndpoint()
    private(set) var service: DaemonService!
    private var thread: Thread?
    private let finished = Atomic<Bool>(false)
    let runError = Mutex<String?>(nil)

    init(root: URL? = nil) throws {
        self.root = root ?? FileManager.default.temporaryDirectory.appendingPathComponent("losad-service-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: self.root, withIntermediateDirectories: true)
        receiver = try DatagramReceiver()
        if root == nil { try writeConfig() }
    }

    var configPath: String { root.appendingPathComponent("losad.toml").path }
    var inbox: String { root.appendingPathComponent("inbox").path }
    var outbox: String { root.appendingPathComponent("outbox").path }

    func writeConfig(extra: String = "") throws {
        try """
        [folders]
        inbox = "inbox"
        outbox = "outbox"
        state = "state"
        [watch]
        settle_seconds = 0.1
        rescan_seconds = 1
        [control]
        socket = "losad.sock"
        socket_group = ""
        [service]
        stop_timeout_seconds = 5
        \(extra)
        """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Starts `run()` on its own thread and waits until the daemon is ready.
    func start(runner: FakeJobRunner = FakeJobRunner()) async throws -> Manager {
        let service = DaemonService(options: DaemonService.Options(configPath: configPath, version: "test",
                                                                   environment: ["NOTIFY_SOCKET": receiver.name],
                                                                   handleSignals: false, memory: { SchedulerHarness.plenty }),
                                    runner: runner, control: endpoint)
        self.service = service
        let thread = Thread { [self] in
            do { try service.run() } catch { runError.withLock { $0 = "\(error)" } }
            finished.store(true, ordering: .releasing)
        }
        thread.start()
        self.thread = thread
        _ = await wait { service.waitUntilReady(timeout: 0) != nil || finished.load(ordering: .acquiring) }
        return try #require(service.waitUntilReady(timeout: 0), "\(runError.withLock { $0 } ?? "not ready")")
    }

    /// Stops the daemon and waits for `run()` to return; returns the seconds it took.
    func stop() async -> Double {
        let began = Date()
        service.requestStop(reason: "test stop")
        #expect(await wait { finished.load(ordering: .acquiring) })
        return Date().timeIntervalSince(began)
    }

    /// Writes a model under a temporary name and renames it into the inbox, as a careful copy does.
    func drop(_ name: String, seed: UInt32) throws {
        let temporary = inbox + "/.\(name).part"
        try TinyGGUF.write(to: temporary, seed: seed)
        #expect(rename(temporary, inbox + "/" + name) == 0)
    }

    /// Polls as a task, so that tests running beside this one keep the Swift concurrency threads.
    func wait(timeout: Double = 10, _ condition: () throws -> Bool) async rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return try condition()
    }

    deinit { try? FileManager.default.removeItem(at: root) }
}

@Suite("DaemonService")
struct DaemonServiceTests {
    @Test("a model dropped into the inbox is validated, queued, run and published; a malformed one becomes a failed job with the reader's sentence")
    func inboxToOutbox() async throws {
        let h = try ServiceHarness()
        let manager = try await h.start()
        try h.drop("tiny.gguf", seed: 1)
        try Data("GGUF this is not a model at all".utf8).write(to: URL(fileURLWithPath: h.inbox + "/broken.gguf"))
        #expect(try await h.wait { try manager.jobs().filter { $0.job.state.isFinal }.count == 2 })

        let jobs = try manager.jobs()
        let tiny = try #require(jobs.first { $0.modelName == "tiny" })
        #expect(tiny.job.state == .succeeded && tiny.job.inputPath == h.inbox + "/tiny.gguf")
        let output = "\(h.outbox)/tiny-\(tiny.job.id!)/tiny.gguf"
        #expect(tiny.job.outputPath == output && FileManager.default.fileExists(atPath: output))
        let view = try manager.job(tiny.job.id!)
        #expect(view.details.model.configSummary.hasPrefix("llama, 1 layers, C 8, 2/1 heads, F 16, V 32"))
        #expect(try view.details.job.decodedSettings(as: JobSettings.self) == DaemonConfig.defaults.job)

        let broken = try #require(jobs.first { $0.modelName == "broken" })
        #expect(broken.job.state == .failed)
        let error = try #require(broken.job.error)
        #expect(error.hasPrefix("cannot read the model: \(h.inbox)/broken.gguf: "), "\(error)")
        #expect(FileManager.default.fileExists(atPath: h.inbox + "/tiny.gguf") && FileManager.default.fileExists(atPath: h.inbox + "/broken.gguf"),
                "inputs are never moved or deleted")

        // The daemon goes on serving: a later drop still becomes a job.
        try h.drop("later.gguf", seed: 2)
        #expect(try await h.wait { try manager.jobs(states: [.succeeded]).count == 2 })
        #expect(try manager.status().jobCounts == [.succeeded: 2, .failed: 1])
        #expect(await h.stop() < 2)
        #expect(h.runError.withLock { $0 } == nil)
        // A clean stop folds the write-ahead log into the database file; no job leaves a state folder behind.
        let wal = h.root.appendingPathComponent("state/losad.sqlite-wal").path
        #expect(((try? FileManager.default.attributesOfItem(atPath: wal))?[.size] as? Int ?? 0) == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: h.root.appendingPathComponent("state/jobs").path).isEmpty)
    }

    @Test("the daemon's API: submit (duplicates and overrides), list, show, metrics, cancel, pause, resume and watch")
    func managerOperations() async throws {
        let h = try ServiceHarness()
        let runner = FakeJobRunner(per: ["slow": FakeJobRunner.Behaviour(iterations: 1, stepsPerIteration: 400, stepSeconds: 0.01)])
        let manager = try await h.start(runner: runner)
        let models = h.root.appendingPathComponent("models").path
        try FileManager.default.createDirectory(atPath: models, withIntermediateDirectories: true)
        try TinyGGUF.write(to: models + "/m.gguf", seed: 7)
        try TinyGGUF.write(to: models + "/slow.gguf", seed: 8)

        let first = try manager.submit(path: models + "/m.gguf")
        guard case .enqueued(let job) = first else { Issue.record("not enqueued: \(first)"); return }
        let again = try manager.submit(path: models + "/m.gguf")
        #expect(again.job.id == job.id && again != .enqueued(again.job), "same model, same settings: \(again)")
        let other = try manager.submit(path: models + "/m.gguf", changes: [.pattern: .text("2:4")])
        #expect(other.job.id != job.id && other.job.settings.contains("\"pattern\":\"2:4\"") && other.job.settings.contains("\"sparsity\":0.5"))
        #expect(throws: RequestError.invalidSetting(.invalidSetting(field: "sparsity", value: "0.99",
                                                                    allowed: "a fraction of weights to zero, from 0.01 to 0.95"))) {
            try manager.submit(path: models + "/m.gguf", changes: [.sparsity: .number(0.99)])
        }
        #expect(throws: RequestError.self) { try manager.submit(path: "models/m.gguf") }
        #expect(throws: RequestError.self) { try manager.submit(path: models + "/missing.gguf") }
        #expect(try await h.wait { try manager.jobs(states: [.succeeded]).count == 2 })

        let metrics = try manager.metrics()
        #expect(metrics.map(\.jobID) == [other.job.id!, job.id!] && metrics[0].metrics.map(\.name) == ["perplexity.losa", "sparsity"])
        #expect(throws: RequestError.jobNotFound(999)) { try manager.job(999) }
        #expect(throws: RequestError.self) { try manager.cancel(job: job.id!) }

        // Pause, submit, see it wait; resume; watch it run; cancel it.
        #expect(manager.pause())
        guard case .enqueued(let slow) = try manager.submit(path: models + "/slow.gguf") else { Issue.record("not enqueued"); return }
        try await Task.sleep(for: .milliseconds(100))
        #expect(try manager.status().queued == 1 && (try manager.status()).paused)
        let updates = try manager.watch(job: slow.id!)
        #expect(try manager.resume())
        var seen: [JobRecord.State] = []
        var cancelAsked = false
        for await update in updates {
            if seen.last != update.job.state { seen.append(update.job.state) }
            if update.job.state == .running, update.progress != nil, !cancelAsked {
                cancelAsked = true
                #expect(try manager.status().running.map(\.job.id) == [slow.id])
                _ = try manager.cancel(job: slow.id!)
            }
            if update.job.state.isFinal { break }
        }
        #expect(seen == [.queued, .running, .cancelled])
        #expect(throws: RequestError.invalidState(job: slow.id!, reason: "it is cancelled; only a job that is queued or running can be cancelled")) {
            try manager.cancel(job: slow.id!)
        }
        _ = await h.stop()
        #expect(throws: RequestError.shuttingDown) { try manager.retry(job: slow.id!) }
        #expect(h.endpoint.calls.withLock { $0 } == ["start \(h.root.path)/losad.sock passed=0 status=true", "stop"])
    }

    @Test("a reload applies a valid file and refuses an invalid one, keeping the running configuration; RELOADING and READY bracket it")
    func reload() async throws {
        let h = try ServiceHarness()
        let manager = try await h.start()
        #expect(h.receiver.receive()?.hasPrefix("READY=1\nSTATUS=idle; 0 queued") == true)
        try h.writeConfig(extra: "[scheduler]\nrunning_jobs = 3\n[job]\nprofile = \"quick\"\n")
        let result = try manager.reload()
        #expect(result == ReloadResult(restartNeeded: [], changed: true))
        #expect(manager.scheduler.settings.runningJobs == 3 && h.service.configuration?.job.profile == .quick)
        let datagrams = [h.receiver.receive(), h.receiver.receive()].compactMap { $0 }
        #expect(datagrams.first?.hasPrefix("RELOADING=1\nMONOTONIC_USEC=") == true && datagrams.last?.hasPrefix("READY=1") == true,
                "\(datagrams)")

        try "[scheduler]\nrunning_jobz = 2\n".write(toFile: h.configPath, atomically: true, encoding: .utf8)
        #expect(throws: RequestError.invalidConfiguration("\(h.configPath): unknown key scheduler.running_jobz; did you mean scheduler.running_jobs?")) {
            try manager.reload()
        }
        #expect(manager.scheduler.settings.runningJobs == 3 && h.service.configuration?.job.profile == .quick)

        try h.writeConfig()
        try (String(contentsOfFile: h.configPath, encoding: .utf8).replacingOccurrences(of: "socket = \"losad.sock\"", with: "socket = \"other.sock\""))
            .write(toFile: h.configPath, atomically: true, encoding: .utf8)
        #expect(try manager.reload().restartNeeded == ["control.socket"])
        #expect(h.service.configuration?.control.socketPath == h.root.path + "/losad.sock", "kept until a restart")
        _ = await h.stop()
    }

    @Test("after a restart, models already taken are not queued again, and a job the stop interrupted resumes")
    func restart() async throws {
        let first = try ServiceHarness()
        let slow = FakeJobRunner.Behaviour(iterations: 4, stepsPerIteration: 100, stepSeconds: 0.005)
        let manager = try await first.start(runner: FakeJobRunner(per: ["slow": slow]))
        try first.drop("done.gguf", seed: 11)
        #expect(try await first.wait { try manager.jobs(states: [.succeeded]).count == 1 })
        try first.drop("slow.gguf", seed: 12)
        #expect(try await first.wait { try manager.jobs(states: [.running]).first?.job.checkpointPath != nil })
        #expect(await first.stop() < 2)
        let interrupted = try #require(try manager.jobs().first { $0.modelName == "slow" })
        #expect(interrupted.job.state == .queued)
        #expect(first.receiver.drain().contains("STOPPING=1\nSTATUS=stopping: checkpointing job \(interrupted.job.id!)"))

        let second = try ServiceHarness(root: first.root)
        let runner = FakeJobRunner(per: ["slow": slow])
        let again = try await second.start(runner: runner)
        try second.drop("zz-new.gguf", seed: 13)   // offered after the old ones: once it is a job, they were considered
        #expect(try await second.wait { try again.jobs().contains { $0.modelName == "zz-new" && $0.job.state == .succeeded } })
        #expect(try await second.wait { try again.jobs(states: [.succeeded]).count == 3 })
        #expect(try again.jobs().count == 3, "done.gguf and slow.gguf were not queued again")
        #expect(runner.starts.first.map { ($0.model, $0.firstIteration > 1, $0.attempt) } ?? ("", false, 0) == ("slow", true, 2))
        _ = await second.stop()
    }
}
