#if canImport(Glibc)
import Glibc
#endif
import Compression
import Foundation
import Ledger
import Synchronization
import Testing
@testable import Daemon

/// A scheduler over a ledger in a temporary folder, with a fake runner.
final class SchedulerHarness: @unchecked Sendable {
    let root: URL
    let ledger: Ledger
    let runner: FakeJobRunner
    let scheduler: JobScheduler

    static let plenty = MemoryAvailability(machineAvailable: 64 << 30, machineTotal: 64 << 30)

    init(runner: FakeJobRunner = FakeJobRunner(), runningJobs: Int = 1, memory: MemoryAvailability = plenty,
         limit: DaemonConfig.MemoryLimit = .automatic, progressInterval: Double = 1, root: URL? = nil) throws {
        self.root = root ?? FileManager.default.temporaryDirectory.appendingPathComponent("losad-scheduler-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.root.appendingPathComponent("outbox"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: self.root.appendingPathComponent("state"), withIntermediateDirectories: true)
        ledger = try Ledger.open(path: self.root.appendingPathComponent("state/losad.sqlite").path)
        self.runner = runner
        let settings = JobScheduler.Settings(runningJobs: runningJobs, threads: 0, memoryLimit: limit, priority: .idle,
                                             outbox: self.root.appendingPathComponent("outbox").path,
                                             state: self.root.appendingPathComponent("state").path,
                                             progressInterval: progressInterval)
        let box = StatusBox()
        statusBox = box
        scheduler = JobScheduler(ledger: ledger, runner: runner, settings: settings, memory: { memory }, status: { box.append($0) })
    }

    let statusBox: StatusBox

    final class StatusBox: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
    }

    var statuses: [String] { statusBox.lines.withLock { $0 } }

    var outbox: String { root.appendingPathComponent("outbox").path }

    /// Queues a job for a made-up model called `name` (its hash derived from the name).
    @discardableResult
    func enqueue(_ name: String, settings: JobSettings = DaemonConfig.defaults.job) throws -> Int64 {
        let hash = SHA256.hex({ var h = SHA256(); h.update(Array(name.utf8)); return h.finalize() }())
        let model = ModelRecord(contentHash: hash, path: "/inbox/\(name).gguf", format: "gguf", sizeBytes: 1, name: name,
                                configSummary: "test")
        return try ledger.enqueue(model: model, inputPath: "/inbox/\(name).gguf", settings: settings).job.id!
    }

    func state(_ id: Int64) -> JobRecord.State? { (try? ledger.job(id))??.state }

    /// Polls until `condition` holds or `timeout` seconds pass, sleeping as a task (tests running
    /// beside this one need the Swift concurrency threads).
    func wait(timeout: Double = 10, _ condition: () throws -> Bool) async rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return try condition()
    }

    /// Waits until no job holds a slot and none is queued (or the queue is paused).
    func idle(timeout: Double = 20) async -> Bool {
        await wait(timeout: timeout) {
            scheduler.runningJobs().isEmpty && (scheduler.isPaused || ((try? ledger.nextQueuedJob()) ?? nil) == nil)
        }
    }

    deinit { try? FileManager.default.removeItem(at: root) }
}

@Suite("JobScheduler")
struct JobSchedulerTests {
    @Test("queued jobs run one at a time, first in first out, at idle CPU priority, and publish complete output folders")
    func firstInFirstOut() async throws {
        let h = try SchedulerHarness()
        let ids = try ["alpha", "beta", "gamma"].map { try h.enqueue($0) }
        try h.scheduler.start()
        #expect(await h.idle(timeout: 20))
        #expect(h.runner.starts.map(\.job) == ids)
        #expect(h.runner.mostConcurrent == 1)
        #expect(h.runner.starts.allSatisfy { $0.policy == ComputePriority.schedIdle && $0.nice == 19 },
                "\(h.runner.starts.map { ($0.policy, $0.nice) })")
        for (id, name) in zip(ids, ["alpha", "beta", "gamma"]) {
            let details = try #require(try h.ledger.details(job: id))
            #expect(details.job.state == .succeeded && details.job.attempts == 1 && details.job.progress == 1)
            #expect(details.job.outputPath == "\(h.outbox)/\(name)-\(id)/\(name).gguf")
            #expect(FileManager.default.fileExists(atPath: "\(h.outbox)/\(name)-\(id)/report.json"))
            #expect(details.metrics.map(\.name) == ["perplexity.losa", "sparsity"])
            #expect(details.layerStatistics.map(\.iteration) == [1, 2])
            #expect(details.events.map(\.kind) == [.queued, .started, .stage, .checkpoint, .checkpoint, .stage, .succeeded])
            #expect(details.events.last?.message == "wrote \(h.outbox)/\(name)-\(id)/\(name).gguf; report at \(h.outbox)/\(name)-\(id)/report.json")
            // Its state folder, checkpoints and all, is removed once it succeeded.
            #expect(!FileManager.default.fileExists(atPath: h.root.appendingPathComponent("state/jobs/\(id)").path))
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: h.outbox).sorted()
        #expect(left == ["alpha-\(ids[0])", "beta-\(ids[1])", "gamma-\(ids[2])"], "no hidden partial folders remain")
    }

    @Test("with two slots two jobs run at the same time")
    func twoSlots() async throws {
        let runner = FakeJobRunner(FakeJobRunner.Behaviour(iterations: 1, stepsPerIteration: 10, stepSeconds: 0.02))
        let h = try SchedulerHarness(runner: runner, runningJobs: 2)
        for name in ["a", "b", "c", "d"] { try h.enqueue(name) }
        try h.scheduler.start()
        #expect(await h.idle(timeout: 20))
        #expect(runner.mostConcurrent == 2)
        #expect(try h.ledger.jobCounts() == [.succeeded: 4])
    }

    @Test("a running job is cancelled within a second, in the middle of its work")
    func cancelMidJob() async throws {
        let runner = FakeJobRunner(FakeJobRunner.Behaviour(iterations: 1, stepsPerIteration: 500, stepSeconds: 0.01))
        let h = try SchedulerHarness(runner: runner)
        let id = try h.enqueue("slow")
        let next = try h.enqueue("next")
        try h.scheduler.start()
        #expect(await h.wait { (h.scheduler.progress(of: id)?.step ?? 0) >= 3 })
        let asked = Date()
        let during = try h.scheduler.cancel(job: id)
        #expect(during.state == .running, "a running job stays running until its runner stops")
        #expect(await h.wait(timeout: 5) { h.state(id) == .cancelled })
        let elapsed = Date().timeIntervalSince(asked)
        #expect(elapsed < 1.0, "cancelled after \(elapsed) s")
        let job = try #require(try h.ledger.job(id))
        #expect(job.error == "cancelled by request" && job.step.map { $0 < 500 } == true)
        #expect(!FileManager.default.fileExists(atPath: "\(h.outbox)/.slow-\(id).partial") &&
                !FileManager.default.fileExists(atPath: "\(h.outbox)/slow-\(id)"))
        // The queue goes on with the next job; a queued job is cancelled at once.
        #expect(await h.wait { h.state(next) == .running })
        #expect(throws: LedgerError.self) { try h.scheduler.cancel(job: id) }
        _ = try h.scheduler.cancel(job: next)
        #expect(await h.wait(timeout: 5) { h.state(next) == .cancelled })
    }

    @Test("a paused queue starts nothing until it is resumed; a running job is not stopped by a pause")
    func pauseAndResume() async throws {
        let h = try SchedulerHarness(runner: FakeJobRunner(FakeJobRunner.Behaviour(iterations: 1, stepsPerIteration: 100, stepSeconds: 0.01)))
        let first = try h.enqueue("first")
        try h.scheduler.start()
        #expect(await h.wait { h.state(first) == .running })
        #expect(h.scheduler.pause())
        #expect(!h.scheduler.pause(), "pausing twice reports it was already paused")
        let second = try h.enqueue("second")
        h.scheduler.wake()   // what an enqueue through the daemon does
        #expect(await h.wait { h.state(first) == .succeeded })
        try await Task.sleep(for: .milliseconds(200))
        #expect(h.state(second) == .queued)
        #expect(h.scheduler.statusLine() == "paused; 1 queued; last: job \(first) (first) succeeded")
        #expect(h.scheduler.resume())
        #expect(await h.idle(timeout: 10))
        #expect(h.state(second) == .succeeded)
    }

    @Test("a job whose estimated peak memory exceeds what is available is refused with the reason in the ledger; the next job runs")
    func refusedByMemory() async throws {
        let runner = FakeJobRunner(per: ["huge": FakeJobRunner.Behaviour(estimateBytes: 2 << 30)])
        let h = try SchedulerHarness(runner: runner, memory: MemoryAvailability(machineAvailable: 512 << 20, machineTotal: 1 << 30))
        let huge = try h.enqueue("huge")
        let small = try h.enqueue("small")
        try h.scheduler.start()
        #expect(await h.idle(timeout: 10))
        let refused = try #require(try h.ledger.job(huge))
        #expect(refused.state == .refused && refused.attempts == 0)
        let reason = try #require(refused.error)
        #expect(reason.contains("job \(huge) (huge) needs an estimated 2.0 GiB") && reason.contains("512.0 MiB available")
                && reason.contains("1.5 GiB short"), "\(reason)")
        #expect(h.state(small) == .succeeded)
        #expect(!h.runner.starts.contains { $0.job == huge })
    }

    @Test("the configured memory limit refuses a job that the machine could hold")
    func refusedByLimit() async throws {
        let runner = FakeJobRunner(FakeJobRunner.Behaviour(estimateBytes: 100 << 20))
        let h = try SchedulerHarness(runner: runner, limit: .bytes(64 << 20))
        let id = try h.enqueue("model")
        try h.scheduler.start()
        #expect(await h.idle(timeout: 10))
        #expect(h.state(id) == .refused)
        #expect((try h.ledger.job(id))?.error?.contains("scheduler.memory_limit is 64.0 MiB") == true)
    }

    @Test("the runner plans and runs a job within the bound admission holds it to: the configured limit when it is the tightest")
    func theRunnerSeesTheMemoryBound() async throws {
        let runner = FakeJobRunner(FakeJobRunner.Behaviour(estimateBytes: 100 << 20))
        let h = try SchedulerHarness(runner: runner, limit: .bytes(256 << 20))
        let id = try h.enqueue("model")
        try h.scheduler.start()
        #expect(await h.idle(timeout: 10))
        #expect(h.state(id) == .succeeded)
        #expect(runner.limitsSeenByEstimates == [256 << 20])
        #expect(runner.starts.map(\.memoryLimit) == [256 << 20])
    }

    @Test("a runner's error fails its job with the runner's sentence; an estimate that fails fails the job too; the queue goes on")
    func failures() async throws {
        let runner = FakeJobRunner(per: [
            "broken": FakeJobRunner.Behaviour(failAt: (step: 4, message: "losa: the loss became NaN at step 4")),
            "unreadable": FakeJobRunner.Behaviour(estimateError: "model.gguf: header is invalid"),
        ])
        let h = try SchedulerHarness(runner: runner)
        let broken = try h.enqueue("broken")
        let unreadable = try h.enqueue("unreadable")
        let fine = try h.enqueue("fine")
        try h.scheduler.start()
        #expect(await h.idle(timeout: 10))
        let failed = try #require(try h.ledger.job(broken))
        #expect(failed.state == .failed && failed.error == "losa: the loss became NaN at step 4")
        #expect(failed.checkpointPath != nil, "the checkpoint of the finished iteration is kept for a retry")
        #expect((try h.ledger.job(unreadable))?.error == "cannot estimate its memory: model.gguf: header is invalid")
        #expect(h.state(fine) == .succeeded)
        #expect(try FileManager.default.contentsOfDirectory(atPath: h.outbox) == ["fine-\(fine)"])

        // A retry resumes the failed job from its checkpoint (and fails again at the same step here).
        _ = try h.scheduler.retry(job: broken)
        #expect(await h.idle(timeout: 10))
        let retried = try #require(h.runner.starts.last)
        #expect(retried.job == broken && retried.firstIteration == 2 && retried.attempt == 2)
    }

    @Test("a stop marks the running job interrupted and queued; the next start resumes it from its checkpoint and finishes it")
    func stopAndResume() async throws {
        let behaviour = FakeJobRunner.Behaviour(iterations: 3, stepsPerIteration: 40, stepSeconds: 0.005)
        let first = try SchedulerHarness(runner: FakeJobRunner(behaviour))
        let id = try first.enqueue("model")
        let queuedBehind = try first.enqueue("behind")
        try first.scheduler.start()
        #expect(await first.wait { ((try? first.ledger.job(id))??.checkpointPath) != nil })
        let asked = Date()
        let result = first.scheduler.stop(timeout: 5)
        #expect(Date().timeIntervalSince(asked) < 1)
        #expect(result == JobScheduler.StopResult(interrupted: [id], stoppedInTime: true))
        let interrupted = try #require(try first.ledger.details(job: id))
        #expect(interrupted.job.state == .queued && interrupted.job.attempts == 1)
        #expect(interrupted.events.last?.kind == .interrupted)
        #expect(interrupted.events.last?.message.contains("resumes from \(interrupted.job.checkpointPath!)") == true)
        #expect(first.state(queuedBehind) == .queued)
        first.scheduler.retryAfterStopIsRefused()

        // The next daemon start: a new scheduler on the same ledger and state folder.
        let runner = FakeJobRunner(behaviour)
        let second = try SchedulerHarness(runner: runner, root: first.root)
        try second.scheduler.start()
        #expect(await second.idle(timeout: 20))
        let resumed = try #require(runner.starts.first)
        #expect(resumed.job == id && resumed.attempt == 2 && resumed.firstIteration >= 2)
        #expect(resumed.resumeFrom == interrupted.job.checkpointPath)
        #expect(second.state(id) == .succeeded && second.state(queuedBehind) == .succeeded)
        #expect(runner.starts.map(\.job) == [id, queuedBehind])
    }

    @Test("progress reaches the ledger at most once per interval and at every stage change; STATUS names the job, stage and progress")
    func progressIsThrottled() async throws {
        let runner = FakeJobRunner(FakeJobRunner.Behaviour(iterations: 2, stepsPerIteration: 20, stepSeconds: 0.005, reportsPerStep: 5))
        let h = try SchedulerHarness(runner: runner, progressInterval: 0.1)
        let id = try h.enqueue("model")
        let updates = h.scheduler.updates.subscribe(job: id)
        let began = Date()
        try h.scheduler.start()
        #expect(await h.idle(timeout: 10))
        let elapsed = Date().timeIntervalSince(began)
        h.scheduler.updates.finish()
        var running = 0
        var states: [JobRecord.State] = []
        for await update in updates {
            if update.job.state == .running && update.progress != nil { running += 1 }
            if states.last != update.job.state { states.append(update.job.state) }
        }
        let progressWrites = running - 2   // the two checkpoint updates carry the progress too
        // 2 × 20 × 5 = 200 reports; written: one per 0.1 s plus the two stage changes (train, export).
        #expect(progressWrites >= 2 && Double(progressWrites) <= elapsed / 0.1 + 3, "\(progressWrites) writes in \(elapsed) s")
        #expect(states == [.running, .succeeded])
        let stages = try #require(try h.ledger.details(job: id)).events.filter { $0.kind == .stage }.map(\.stage)
        #expect(stages == ["train", "export"])
        #expect(h.statuses.contains { $0.hasPrefix("job \(id) (model): train ") && $0.contains(" step ") && $0.contains("%, ETA ") },
                "\(h.statuses)")
        #expect(await h.wait(timeout: 2) { h.statuses.last == "idle; 0 queued; last: job \(id) (model) succeeded" }, "\(h.statuses.suffix(3))")
    }
}

extension JobScheduler {
    /// After `stop`, nothing starts any more (a wake is ignored).
    func retryAfterStopIsRefused() {
        wake()
        #expect(runningJobs().isEmpty)
    }
}
