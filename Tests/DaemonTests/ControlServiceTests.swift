#if canImport(Glibc)
import Glibc
#endif
import Compression
import Control
import Foundation
import Ledger
import Testing
@testable import Daemon

/// `ControlService`, io.losa.Manager over the daemon's `Manager`, called in process (the socket and
/// the real executable are LosadTests/ControlSocketTests).
@Suite("ControlService")
struct ControlServiceTests {
    static let compute: @Sendable (DaemonConfig) -> ComputeDescription = { config in
        ComputeDescription(device: "Test CPU (\(config.scheduler.threads) threads)", kernel: "Haswell (0.3.21, 2 threads)")
    }

    /// Collects a watch stream to its end, or until `timeout`.
    static func collect(_ stream: AsyncThrowingStream<WatchReply, any Error>, timeout: Duration = .seconds(10)) async throws -> [WatchReply] {
        try await withThrowingTaskGroup(of: [WatchReply]?.self) { group in
            group.addTask {
                var replies: [WatchReply] = []
                for try await reply in stream { replies.append(reply) }
                return replies
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            return try #require(first, "the watch did not end within \(timeout)")
        }
    }

    @Test("Watch without a job follows the next one to start, one reply per event, and ends with it")
    func watchFollowsTheNextJob() async throws {
        let h = try ServiceHarness()
        // Steps slow enough that a progress write (at most one a second, and at every stage change)
        // falls inside the second iteration.
        let manager = try await h.start(runner: FakeJobRunner(.init(iterations: 2, stepsPerIteration: 3, stepSeconds: 0.25)))
        let service = ControlService(manager: manager, compute: Self.compute)
        try h.drop("other.gguf", seed: 3)
        #expect(try await h.wait { try manager.jobs(states: [.succeeded]).count == 1 }, "an ended job is not followed")

        let stream = try await service.watch(id: nil, caller: .currentProcess)
        try h.drop("tiny.gguf", seed: 1)
        let replies = try await Self.collect(stream)

        let ids = Set(replies.map(\.job.id))
        #expect(ids.count == 1 && ids.first != 1, "one job, the new one: \(ids)")
        #expect(replies.first?.event == nil && replies.first?.job.state == .queued, "\(String(describing: replies.first))")
        let last = try #require(replies.last)
        #expect(last.job.state == .succeeded && last.event?.kind == "succeeded" && last.event?.state == .succeeded)
        #expect(last.event?.message == "wrote \(last.job.output ?? "?")" && last.job.output?.hasPrefix(h.outbox) == true)
        #expect(replies.dropLast().allSatisfy { !$0.job.state.isFinal }, "only the last reply is final")
        let kinds = replies.dropFirst().compactMap { $0.event?.kind }
        #expect(kinds.count == replies.count - 1)
        #expect(kinds.first == "started", "\(kinds)")
        #expect(kinds.contains("stage") && kinds.contains("iteration"), "\(kinds)")
        let iteration = try #require(replies.first { $0.event?.kind == "iteration" })
        #expect(iteration.event?.progress?.iteration == 2 && iteration.event?.message == "iteration 2/2")
        let running = replies.filter { $0.job.state == .running }
        #expect(running.allSatisfy { $0.job.progress != nil } && !running.isEmpty, "a running job carries its progress")
        #expect(await h.wait { manager.scheduler.updates.subscriberCount == 0 }, "the stream let go of its subscription")
        #expect(await h.stop() < 3)
    }

    @Test("a watch whose consumer goes away unsubscribes at once")
    func watchUnsubscribes() async throws {
        let h = try ServiceHarness()
        let manager = try await h.start()
        let service = ControlService(manager: manager, compute: Self.compute)
        let consumer = Task {
            for try await _ in try await service.watch(id: nil, caller: .currentProcess) {}
        }
        #expect(await h.wait { manager.scheduler.updates.subscriberCount == 1 })
        consumer.cancel()
        #expect(await h.wait { manager.scheduler.updates.subscriberCount == 0 })
        #expect(await h.stop() < 3)
    }

    @Test("the manager's answers and refusals in the interface's terms: status, submit, list, retry, reload")
    func methodsAndErrors() async throws {
        let h = try ServiceHarness()
        let runner = FakeJobRunner(per: ["huge": .init(estimateBytes: 1 << 50)])
        let manager = try await h.start(runner: runner)
        let service = ControlService(manager: manager, compute: Self.compute)
        let me = PeerCredentials.currentProcess

        // A job refused at admission lists as failed, with its reason.
        try h.drop("huge.gguf", seed: 4)
        #expect(try await h.wait { try manager.jobs(states: [.refused]).count == 1 })
        let failed = try await service.listJobs(ListJobsParameters(state: .failed), caller: me).jobs
        #expect(failed.count == 1 && failed[0].state == .failed && failed[0].model == "huge.gguf" && failed[0].error != nil)
        #expect(try await service.listJobs(ListJobsParameters(state: .succeeded), caller: me).jobs.isEmpty)

        #expect(try await service.pause(caller: me).state == .paused)
        let outside = h.root.appendingPathComponent("elsewhere.gguf").path
        try TinyGGUF.write(to: outside, seed: 5)
        let submitted = try await service.submit(SubmitParameters(path: outside, method: "magnitude", recovery: "lora"), caller: me).job
        #expect(submitted.state == .queued && submitted.input == outside && submitted.model == "elsewhere.gguf")
        #expect(submitted.settings.method == "magnitude" && submitted.settings.recovery == "lora" && submitted.settings.sparsity == 0.5)
        let again = try await service.submit(SubmitParameters(path: outside, method: "magnitude", recovery: "lora"), caller: me).job
        #expect(again.id == submitted.id, "the same model with the same settings is not queued twice")

        let status = try await service.status(caller: me)
        #expect(status.state == .paused && status.queued == 1 && status.running.isEmpty && status.version == "test")
        #expect(status.kernel == "Haswell (0.3.21, 2 threads)" && status.device == "Test CPU (0 threads)")
        #expect(status.inbox == h.inbox && status.outbox == h.outbox)

        await #expect(throws: Control.ManagerError.jobNotFound(id: 99)) { try await service.getJob(id: 99, caller: me) }
        await #expect(throws: Control.ManagerError.jobNotFound(id: 99)) { try await service.cancel(id: 99, caller: me) }
        do {
            _ = try await service.retry(id: submitted.id, caller: me)
            Issue.record("a queued job was retried")
        } catch let Control.ManagerError.invalidState(id, state, reason) {
            #expect(id == submitted.id && state == "queued" && reason.contains("only a job that is"), "\(reason)")
        }
        // A refused setting keeps the settings' own sentence, naming the Submit parameter it came from.
        await #expect(throws: Control.ManagerError.invalidSetting(
            parameter: "sparsity", message: "sparsity = 0.99 is not allowed; expected \(JobSettingKey.sparsity.allowed)")) {
            try await service.submit(SubmitParameters(path: outside, sparsity: 0.99), caller: me)
        }
        await #expect(throws: Control.ManagerError.invalidSetting(
            parameter: "pattern", message: "pattern = \"3-5\" is not allowed; expected \(JobSettingKey.pattern.allowed)")) {
            try await service.submit(SubmitParameters(path: outside, pattern: "3-5"), caller: me)
        }
        await #expect(throws: Control.ManagerError.invalidSetting(
            parameter: "evaluation",
            message: "evaluation_corpus = \"/no/such/text.txt\" is not allowed; expected \(JobSettingKey.evaluationCorpus.allowed)")) {
            try await service.submit(SubmitParameters(path: outside, evaluation: "/no/such/text.txt"), caller: me)
        }
        await #expect(throws: Control.ManagerError.invalidSetting(
            parameter: "outputs", message: "outputs = [] is not allowed; expected \(JobSettingKey.outputs.allowed)")) {
            try await service.submit(SubmitParameters(path: outside, outputs: []), caller: me)
        }
        do {
            _ = try await service.submit(SubmitParameters(path: h.root.appendingPathComponent("missing.gguf").path), caller: me)
            Issue.record("a missing file was queued")
        } catch let Control.ManagerError.invalidModel(path, reason) {
            #expect(path.hasSuffix("/missing.gguf") && reason == "No such file or directory")
        }

        let cancelled = try await service.cancel(id: submitted.id, caller: me).job
        #expect(cancelled.state == .cancelled)
        let details = try await service.getJob(id: submitted.id, caller: me)
        #expect(details.events.map(\.kind) == ["queued", "cancelled"] && details.events.last?.state == .cancelled)
        #expect(try await service.retry(id: submitted.id, caller: me).job.state == .queued)
        #expect(try await service.resume(caller: me).state != .paused)
        #expect(try await h.wait { try manager.jobs(states: [.succeeded]).count == 1 })
        let finished = try await service.getJob(id: submitted.id, caller: me)
        #expect(finished.figures.measuredSparsity == 0.5, "\(finished.figures)")
        #expect(finished.iterations.map(\.iteration) == [1, 2] && finished.iterations[0].meanRank == 4)
        let kinds = finished.events.map(\.kind)
        #expect(kinds.first == "queued" && kinds.contains("retried") && kinds.contains("started") && kinds.contains("iteration")
                && kinds.last == "succeeded", "\(kinds)")

        // Reload: an invalid file is InvalidConfiguration naming the file; the running configuration stays.
        try "[scheduler]\nrunning_jobs = 0\n".write(toFile: h.configPath, atomically: true, encoding: .utf8)
        do {
            try await service.reload(caller: me)
            Issue.record("an invalid configuration was accepted")
        } catch let Control.ManagerError.invalidConfiguration(file, reason) {
            #expect(file == h.configPath && reason.contains("scheduler.running_jobs = 0"), "\(reason)")
        }
        let metrics = try await service.metrics(caller: me).metrics
        let jobs = try #require(metrics.first { $0.name == "losad_jobs" })
        #expect(jobs.samples.first { $0.labels == ["state": "refused"] }?.value == 1)
        #expect(jobs.samples.first { $0.labels == ["state": "succeeded"] }?.value == 1)
        let sparsity = try #require(metrics.first { $0.name == "losad_job_sparsity_ratio" })
        #expect(sparsity.samples == [MetricSample(labels: ["job": "\(submitted.id)", "model": "elsewhere"], value: 0.5)])
        #expect(await h.stop() < 3)
    }

    @Test("ledger records read as the interface's values: refused is failed, settings are read leniently, figures from the runner's names")
    func replies() throws {
        #expect(ControlReplies.state(.refused) == .failed && ControlReplies.ledgerStates(.failed) == [.failed, .refused])
        let settings = ControlReplies.settings(#"{"sparsity":0.6,"method":"wanda","calibration_corpus":"/t.txt"}"#)
        #expect(settings == Control.SubmittedSettings(sparsity: 0.6, method: "wanda", pattern: "unknown", allocation: "unknown",
                                                recovery: "unknown", profile: "unknown", calibration: "/t.txt"))
        #expect(ControlReplies.settings("not json").sparsity == 0)

        let metrics = [("memory.peak", 1e9, "bytes"), ("output.bytes", 5e6, "bytes"), ("perplexity.dense.b.txt", 9.0, ""),
                       ("perplexity.dense.a.txt", 10.0, ""), ("perplexity.final.a.txt", 12.0, ""), ("perplexity.pruned.a.txt", 30.0, ""),
                       ("perplexity.final.b.txt", .nan, ""), ("sparsity", 0.5, "fraction"), ("wall", 61.5, "seconds")]
            .map { JobMetric(jobID: 1, name: $0.0, value: $0.1, unit: $0.2) }
        #expect(ControlReplies.figures(metrics) == JobFigures(densePerplexity: 10, prunedPerplexity: 30, perplexity: 12,
                                                               measuredSparsity: 0.5, peakMemoryBytes: 1_000_000_000,
                                                               outputBytes: 5_000_000, seconds: 61.5))
        let job = JobRecord(id: 3, modelID: 1, inputPath: "/m/tiny-llama", state: .running, stage: "prune", progress: 0.25,
                            iteration: 2, settings: "{}", createdAt: Date(timeIntervalSince1970: 1_735_725_600))
        let shown = ControlReplies.job(job, progress: CompressionProgress(stage: .train, loss: .infinity, fraction: .nan, remaining: -3))
        #expect(shown.submittedAt == "2025-01-01T10:00:00Z" && shown.model == "tiny-llama")
        #expect(shown.progress == Control.JobProgress(stage: "train", fraction: 0, etaSeconds: 0), "nothing JSON cannot carry")
        #expect(ControlReplies.job(job, progress: nil).progress == Control.JobProgress(stage: "prune", fraction: 0.25, iteration: 2))

        #expect(ControlMetrics.familyName("memory.peak", unit: "bytes") == "losad_job_memory_peak_bytes")
        #expect(ControlMetrics.familyName("output.bytes", unit: "bytes") == "losad_job_output_bytes")
        #expect(ControlMetrics.familyName("sparsity", unit: "fraction") == "losad_job_sparsity_ratio")
        let families = ControlMetrics.jobFamilies([JobMetrics(jobID: 1, modelName: "m", state: .succeeded, metrics: metrics)])
        let perplexity = try #require(families.first { $0.name == "losad_job_perplexity" })
        #expect(perplexity.samples.count == 4, "the NaN is left out")
        #expect(perplexity.samples.contains(MetricSample(labels: ["job": "1", "model": "m", "kind": "final", "text": "a.txt"], value: 12)))
    }

    @Test("a watch follows one job, makes one reply per change and none for a repeated update")
    func followerEvents() {
        var follower = WatchFollower(job: nil)
        let created = Date(timeIntervalSince1970: 1_735_725_600)
        let ended = JobRecord(id: 4, modelID: 1, inputPath: "/m/old.gguf", state: .succeeded, settings: "{}", createdAt: created)
        #expect(follower.reply(to: JobUpdate(job: ended)) == nil, "an ended job is not picked")
        var job = JobRecord(id: 5, modelID: 1, inputPath: "/m/a.gguf", settings: "{}", createdAt: created)
        #expect(follower.reply(to: JobUpdate(job: job))?.event == nil && follower.jobID == 5)
        job.state = .running
        let pruning = CompressionProgress(stage: .prune, iteration: 1, iterations: 2, step: 1, steps: 2, fraction: 0.2,
                                          message: "pruned block 1 of 2")
        let started = follower.reply(to: JobUpdate(job: job, progress: pruning), at: created)
        #expect(started?.event == Control.JobEvent(time: "2025-01-01T10:00:00Z", kind: "started", message: "started", state: .running,
                                                   progress: Control.JobProgress(stage: "prune", fraction: 0.2, iteration: 1, iterations: 2,
                                                                                 step: 1, steps: 2)))
        #expect(follower.reply(to: JobUpdate(job: job, progress: pruning)) == nil, "nothing changed")
        var next = pruning
        next.message = "pruned block 2 of 2"
        #expect(follower.reply(to: JobUpdate(job: job, progress: next))?.event?.kind == "progress", "a new message is news")
        next.iteration = 2
        #expect(follower.reply(to: JobUpdate(job: job, progress: next))?.event?.kind == "iteration")
        next.stage = .train
        #expect(follower.reply(to: JobUpdate(job: job, progress: next))?.event?.kind == "stage")
        var other = job
        other.id = 6
        #expect(follower.reply(to: JobUpdate(job: other, progress: next)) == nil, "another job's update")
        job.state = .failed
        job.error = "out of memory"
        let failed = follower.reply(to: JobUpdate(job: job))
        #expect(failed?.event?.kind == "failed" && failed?.event?.message == "out of memory" && failed?.job.progress == nil)
    }

    @Test("the control group: a name from the group database, a number, or the daemon's own group; an unknown name is a configuration error")
    func accessPolicy() throws {
        let own = try VarlinkControlEndpoint.accessPolicy(.init(socketPath: "/s", socketMode: 0o660, socketGroup: nil), file: "/c.toml")
        #expect(own.controlGroup == getegid() && own.daemonUID == getuid())
        let root = try VarlinkControlEndpoint.accessPolicy(.init(socketPath: "/s", socketMode: 0o660, socketGroup: "root"), file: "/c.toml")
        #expect(root.controlGroup == 0 && root.controlGroupName == "root")
        #expect(try VarlinkControlEndpoint.accessPolicy(.init(socketPath: "/s", socketMode: 0o660, socketGroup: "4242"), file: "/c.toml").controlGroup == 4242)
        #expect(throws: ConfigError.self) {
            try VarlinkControlEndpoint.accessPolicy(.init(socketPath: "/s", socketMode: 0o660, socketGroup: "no-such-group-here"), file: "/c.toml")
        }
        do {
            _ = try VarlinkControlEndpoint.accessPolicy(.init(socketPath: "/s", socketMode: 0o660, socketGroup: "no-such-group-here"), file: "/c.toml")
        } catch {
            #expect("\(error)".hasPrefix("/c.toml: control.socket_group = \"no-such-group-here\" is not allowed; expected a group that exists"))
        }
    }
}
