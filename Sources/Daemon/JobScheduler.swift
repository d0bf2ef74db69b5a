#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Ledger
import Logging
import Synchronization

/// Runs queued jobs from the ledger, first in first out, `running_jobs` at a time, each on its own
/// OS thread at the configured CPU class (a thread's scheduling class is inherited by the threads it
/// starts, so a job's compute threads follow it; Swift concurrency's shared pool is never lowered).
///
/// A job's life here: a slot is reserved → admission (the runner's memory estimate against
/// `MemoryAdmission`; a refusal is recorded with its reason) → `Ledger.start` → `JobRunner.run` with
/// a `JobContext` → succeeded (the hidden output folder is renamed into the outbox), failed,
/// cancelled, or — when the daemon stops — interrupted and queued again, to resume from the job's
/// checkpoint folder at the next start. Progress goes to the ledger at most once per
/// `progressInterval` (and at every stage change) and to `status` (systemd's STATUS=).
///
/// Pausing stops new jobs from starting; running jobs go on (cancel them to stop them).
public final class JobScheduler: Sendable {
    /// The configuration the scheduler follows; a reload may change every field.
    public struct Settings: Sendable, Equatable {
        public var runningJobs: Int
        /// Compute threads per job; 0: one per usable CPU.
        public var threads: Int
        public var memoryLimit: DaemonConfig.MemoryLimit
        public var priority: DaemonConfig.Priority
        public var outbox: String
        /// The state folder; job checkpoints go to `<state>/jobs/<id>/checkpoint`.
        public var state: String
        /// Seconds between progress writes to the ledger for one job (stage changes are written at once).
        public var progressInterval: Double

        public init(runningJobs: Int, threads: Int, memoryLimit: DaemonConfig.MemoryLimit, priority: DaemonConfig.Priority,
                    outbox: String, state: String, progressInterval: Double = 1) {
            self.runningJobs = runningJobs
            self.threads = threads
            self.memoryLimit = memoryLimit
            self.priority = priority
            self.outbox = outbox
            self.state = state
            self.progressInterval = progressInterval
        }

        /// The scheduler's share of a daemon configuration.
        public init(_ config: DaemonConfig) {
            self.init(runningJobs: config.scheduler.runningJobs, threads: config.scheduler.threads,
                      memoryLimit: config.scheduler.memoryLimit, priority: config.scheduler.priority,
                      outbox: config.folders.outbox, state: config.folders.state)
        }
    }

    /// What `stop(timeout:)` did.
    public struct StopResult: Sendable, Equatable {
        /// Jobs that were running and are queued again (they resume at the next start).
        public var interrupted: [Int64]
        /// Whether every runner returned within the timeout (those that did not were marked interrupted anyway).
        public var stoppedInTime: Bool
    }

    /// A running (or reserved, not yet admitted) job, as status queries see it.
    public struct RunningJob: Sendable, Equatable {
        public var id: Int64
        public var modelName: String
        /// The runner's last report; nil before its first.
        public var progress: JobProgress?
        /// Whether a stop was asked for and the runner has not returned yet.
        public var stopping: Bool
    }

    public let ledger: Ledger
    public let updates = JobUpdateFeed()
    private let runner: any JobRunner
    private let memory: @Sendable () -> MemoryAvailability
    private let status: @Sendable (String) -> Void
    private let logger: Logger
    private let state: Mutex<State>
    private let threadsDone = DispatchGroup()
    private let statusLock = NSLock()

    final class Slot: Sendable {
        let id: Int64
        let context: Mutex<JobContext?> = Mutex(nil)
        /// A stop asked for before the context exists (during admission).
        let earlyStop: Mutex<JobContext.StopReason?> = Mutex(nil)
        let live: Mutex<Live>

        struct Live {
            var modelName: String
            var progress: JobProgress?
            var lastWrite = -Double.infinity
            var lastStage: String?
            var writeFailureLogged = false
        }

        init(id: Int64, modelName: String) {
            self.id = id
            live = Mutex(Live(modelName: modelName))
        }

        func requestStop(_ reason: JobContext.StopReason) {
            earlyStop.withLock { current in
                switch (current, reason) {
                case (nil, _), (.daemonStopping, .cancelled): current = reason
                default: break
                }
            }
            context.withLock { $0 }?.requestStop(reason)
        }

        var stopReason: JobContext.StopReason? {
            context.withLock { $0 }?.stopReason ?? earlyStop.withLock { $0 }
        }
    }

    struct State {
        var settings: Settings
        var started = false
        var paused = false
        var stopping = false
        var slots: [Int64: Slot] = [:]
        var interrupted: Set<Int64> = []
        var priorityWarningLogged = false
    }

    /// - Parameters:
    ///   - memory: what the machine allows now (tests pass fixed figures).
    ///   - status: receives a one-line summary whenever it changes (the daemon sends it as STATUS=).
    public init(ledger: Ledger, runner: any JobRunner, settings: Settings,
                memory: @escaping @Sendable () -> MemoryAvailability = { MemoryAvailability.read() },
                status: @escaping @Sendable (String) -> Void = { _ in },
                logger: Logger = Logger(label: "losad.scheduler")) {
        self.ledger = ledger
        self.runner = runner
        self.memory = memory
        self.status = status
        self.logger = logger
        state = Mutex(State(settings: settings))
    }

    // MARK: - Control

    /// Re-queues jobs a previous run left marked running (a crash, `kill -9`, a stop that ran out of
    /// time), then starts queued jobs. Call once, before anything else runs jobs on this ledger.
    /// Returns the recovered jobs.
    @discardableResult
    public func start() throws -> [JobRecord] {
        let recovered = try ledger.recoverInterruptedJobs()
        for job in recovered {
            let how = job.checkpointPath.map { "resumes from \($0)" } ?? "starts over"
            logger.notice("job \(job.id!) was interrupted by the last stop or crash; it is queued again and \(how)",
                          metadata: ["job_id": "\(job.id!)"])
            updates.publish(JobUpdate(job: job))
        }
        state.withLock { $0.started = true }
        wake()
        return recovered
    }

    /// Starts queued jobs while slots are free (after an enqueue, a retry, a resume, a finished job).
    public func wake() {
        var launches: [(JobRecord, Slot, Settings)] = []
        state.withLock { s in
            guard s.started, !s.paused, !s.stopping, s.slots.count < s.settings.runningJobs else { return }
            let queued: [JobRecord]
            do {
                queued = try ledger.queuedJobs()
            } catch {
                logger.error("cannot read the queue from the ledger: \(error)")
                return
            }
            for job in queued where s.slots.count < s.settings.runningJobs && s.slots[job.id!] == nil {
                let name = (try? ledger.model(job.modelID))??.name ?? "model \(job.modelID)"
                let slot = Slot(id: job.id!, modelName: name)
                s.slots[job.id!] = slot
                threadsDone.enter()
                launches.append((job, slot, s.settings))
            }
        }
        for (job, slot, settings) in launches {
            let thread = Thread { [self] in
                execute(job, slot, settings)
                finish(slot)
            }
            thread.name = "losad-job-\(job.id!)"
            thread.stackSize = 16 << 20   // numerics recurse little, but Swift's default 512 KiB is tight for big frames
            thread.start()
        }
        if !launches.isEmpty { publishStatus() }
    }

    /// Follows a changed configuration: more slots start queued jobs at once, fewer let running jobs
    /// finish. The CPU class and thread count apply to jobs that start from now on.
    public func update(_ settings: Settings) {
        state.withLock { $0.settings = settings }
        wake()
    }

    public var settings: Settings { state.withLock { $0.settings } }

    /// Stops starting jobs; running ones go on. Returns whether the queue was running before.
    @discardableResult
    public func pause() -> Bool {
        let was = state.withLock { s in defer { s.paused = true }; return !s.paused }
        if was { logger.notice("queue paused: no job starts until it is resumed") }
        publishStatus()
        return was
    }

    /// Lets queued jobs start again. Returns whether the queue was paused before.
    @discardableResult
    public func resume() -> Bool {
        let was = state.withLock { s in defer { s.paused = false }; return s.paused }
        if was { logger.notice("queue resumed") }
        wake()
        publishStatus()
        return was
    }

    public var isPaused: Bool { state.withLock { $0.paused } }
    public var isStopping: Bool { state.withLock { $0.stopping } }

    /// Cancels a queued job at once, or asks a running one to stop at its next step (it is recorded as
    /// cancelled when its runner returns — within seconds). Returns the job as it is now.
    /// - Throws: `LedgerError` when there is no such job or it already finished.
    @discardableResult
    public func cancel(job id: Int64, reason: String = "cancelled by request") throws -> JobRecord {
        // A slot whose job already ended (its thread is finishing) falls through to the ledger's refusal.
        if let slot = state.withLock({ $0.slots[id] }), let current = try ledger.job(id), !current.state.isFinal {
            slot.requestStop(.cancelled(reason))
            logger.notice("job \(id): cancel requested; it stops at its next step", metadata: ["job_id": "\(id)"])
            return current
        }
        let job = try ledger.cancel(job: id, reason: reason)
        updates.publish(JobUpdate(job: job))
        publishStatus()
        return job
    }

    /// Re-queues a failed, cancelled or refused job (it resumes from its checkpoint if it has one).
    @discardableResult
    public func retry(job id: Int64) throws -> JobRecord {
        let job = try ledger.retry(job: id)
        updates.publish(JobUpdate(job: job))
        wake()
        publishStatus()
        return job
    }

    /// Stops for good: no job starts any more, running jobs are asked to stop at their next step and
    /// are queued again once their runners return. Waits at most `timeout` seconds; a runner still
    /// busy then has its job marked interrupted anyway (it resumes from its last checkpoint).
    public func stop(timeout: Double, reason: String = "the daemon is stopping") -> StopResult {
        let slots = state.withLock { s in
            s.stopping = true
            return Array(s.slots.values)
        }
        for slot in slots { slot.requestStop(.daemonStopping(reason)) }
        let inTime = threadsDone.wait(timeout: .now() + max(0, timeout)) == .success
        if !inTime {
            for slot in state.withLock({ Array($0.slots.values) }) {
                do {
                    let job = try ledger.interrupt(job: slot.id, reason: "\(reason); its runner did not stop within \(Int(timeout.rounded())) s")
                    state.withLock { _ = $0.interrupted.insert(slot.id) }
                    updates.publish(JobUpdate(job: job))
                    logger.warning("job \(slot.id) did not stop within \(timeout) s; marked interrupted", metadata: ["job_id": "\(slot.id)"])
                } catch {
                    // Not running (still in admission, or it ended just now): nothing to mark.
                }
            }
        }
        return StopResult(interrupted: state.withLock { $0.interrupted }.sorted(), stoppedInTime: inTime)
    }

    /// The jobs holding a slot now, by id.
    public func runningJobs() -> [RunningJob] {
        let slots = state.withLock { Array($0.slots.values) }
        return slots.map { slot in
            let live = slot.live.withLock { $0 }
            return RunningJob(id: slot.id, modelName: live.modelName, progress: live.progress, stopping: slot.stopReason != nil)
        }.sorted { $0.id < $1.id }
    }

    /// The runner's last report for a running job.
    public func progress(of job: Int64) -> JobProgress? {
        state.withLock { $0.slots[job] }?.live.withLock { $0.progress }
    }

    /// One line for systemd's STATUS=: the running jobs with stage and progress, then the queue;
    /// when nothing runs, the last job that ended.
    public func statusLine() -> String {
        let (running, paused, stopping) = state.withLock { s in (Array(s.slots.values), s.paused, s.stopping) }
        let queued = ((try? ledger.queuedJobs()) ?? []).filter { job in !running.contains { $0.id == job.id } }.count
        var parts: [String] = []
        for slot in running.sorted(by: { $0.id < $1.id }) {
            let live = slot.live.withLock { $0 }
            parts.append("job \(slot.id) (\(live.modelName)): " + (live.progress.map(JobScheduler.describe) ?? "starting"))
        }
        if stopping {
            parts.insert("stopping", at: 0)
        } else if parts.isEmpty {
            parts.append(paused ? "paused" : "idle")
        } else if paused {
            parts.append("queue paused")
        }
        parts.append("\(queued) queued")
        // With nothing running, the last job that ended says what the daemon did last.
        if running.isEmpty, let last = (try? ledger.jobs(in: [.succeeded, .failed, .cancelled, .refused], limit: 1))?.first {
            let name = (try? ledger.model(last.modelID))??.name ?? "model \(last.modelID)"
            parts.append("last: job \(last.id!) (\(name)) \(last.state.rawValue)")
        }
        return parts.joined(separator: "; ")
    }

    /// "losa 2/5 step 40/100, 41%, ETA 3m 10s".
    static func describe(_ p: JobProgress) -> String {
        var text = p.stage
        if let i = p.iteration, let n = p.iterations { text += " \(i)/\(n)" }
        if let s = p.step, let n = p.steps { text += " step \(s)/\(n)" }
        text += ", \(Int((min(max(p.fraction, 0), 1) * 100).rounded(.down)))%"
        if let eta = p.etaSeconds, eta.isFinite, eta >= 0 { text += ", ETA \(duration(eta))" }
        return text
    }

    /// "45s", "3m 10s", "2h 05m".
    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        if total < 60 { return "\(total)s" }
        if total < 3600 { return "\(total / 60)m \(String(format: "%02d", total % 60))s" }
        return "\(total / 3600)h \(String(format: "%02d", total % 3600 / 60))m"
    }

    /// Computes and sends the line under one lock, so that lines from different job threads cannot
    /// arrive out of order (a stale line last).
    private func publishStatus() {
        statusLock.lock()
        defer { statusLock.unlock() }
        status(statusLine())
    }

    // MARK: - One job (on its own thread)

    private func finish(_ slot: Slot) {
        state.withLock { _ = $0.slots.removeValue(forKey: slot.id) }
        threadsDone.leave()
        wake()
        publishStatus()
    }

    private func execute(_ queued: JobRecord, _ slot: Slot, _ settings: Settings) {
        let id = slot.id
        var logger = self.logger
        logger[metadataKey: "job_id"] = "\(id)"
        lowerPriority(settings.priority, logger)

        let spec: JobSpec
        do {
            spec = try makeSpec(queued, settings)
        } catch {
            record { try ledger.fail(job: id, error: "\(error)") }
            return
        }
        logger[metadataKey: "model"] = "\(spec.modelName)"

        // Admission, before the job counts as started.
        if let early = slot.stopReason {
            if case .cancelled(let reason) = early { record { try ledger.cancel(job: id, reason: reason) } }
            return   // a daemon stop leaves it queued
        }
        let estimate: MemoryEstimate
        do {
            estimate = try runner.estimateMemory(spec)
        } catch {
            logger.error("cannot estimate the memory of job \(id): \(error)")
            record { try ledger.fail(job: id, error: "cannot estimate its memory: \(error)") }
            return
        }
        let decision = MemoryAdmission.decide(job: "job \(id) (\(spec.modelName))", estimate: estimate,
                                              availability: memory(), limit: settings.memoryLimit)
        if case .refuse(let reason) = decision {
            logger.warning("refused: \(reason)")
            record { try ledger.refuse(job: id, reason: reason) }
            return
        }
        if let early = slot.stopReason {
            if case .cancelled(let reason) = early { record { try ledger.cancel(job: id, reason: reason) } }
            return
        }
        var attempt = spec
        do {
            let started = try ledger.start(job: id)
            updates.publish(JobUpdate(job: started))
            attempt.attempt = started.attempts
            try JobFolders.prepare(output: spec.outputFolder, checkpoint: spec.checkpointFolder)
        } catch {
            logger.error("cannot start job \(id): \(error)")
            record { try ledger.fail(job: id, error: "cannot start: \(error)") }
            return
        }
        let resuming = attempt.resumeFrom.map { ", resuming from \($0)" } ?? ""
        logger.info("started (attempt \(attempt.attempt), estimated peak \(MemoryAdmission.format(estimate.totalBytes)))\(resuming)")

        let context = JobContext(logger: logger, handlers: handlers(for: slot, logger: logger))
        slot.context.withLock { $0 = context }
        if let early = slot.earlyStop.withLock({ $0 }) { context.requestStop(early) }   // asked between the checks above and now
        publishStatus()

        let outcome: Result<JobOutcome, any Error>
        do {
            outcome = .success(try runner.run(attempt, context: context))
        } catch {
            outcome = .failure(error)
        }
        conclude(attempt, outcome, context.stopReason, logger)
    }

    /// Records how the runner's return ends the job.
    private func conclude(_ spec: JobSpec, _ outcome: Result<JobOutcome, any Error>, _ stop: JobContext.StopReason?, _ logger: Logger) {
        let id = spec.id
        // A stop that ran out of time has already queued the job again; what the runner returns late changes nothing.
        guard (try? ledger.job(id))??.state == .running else {
            logger.warning("the runner returned after the job stopped counting as running; its result is dropped")
            JobFolders.remove(spec.outputFolder, logger)
            return
        }
        switch (outcome, stop) {
        case (.success(let result), _):
            do {
                let published = try JobFolders.publish(spec.outputFolder, as: spec.publishedFolder, outcome: result)
                if !published.layerStatistics.isEmpty {
                    try ledger.recordLayerStatistics(published.layerStatistics.map { JobScheduler.statistic($0, job: id) })
                }
                if let report = published.reportPath { try ledger.note(job: id, message: "report at \(report)") }
                let metrics = published.metrics.map { JobMetric(jobID: id, name: $0.name, value: $0.value, unit: $0.unit) }
                record { try ledger.succeed(job: id, outputPath: published.outputPath, metrics: metrics) }
                JobFolders.remove(spec.checkpointFolder, logger)   // done: its checkpoints are no longer needed
                logger.notice("succeeded: \(published.outputPath)")
            } catch {
                logger.error("finished, but its output could not be published: \(error)")
                record { try ledger.fail(job: id, error: "its output could not be published: \(error)") }
                JobFolders.remove(spec.outputFolder, logger)
            }
        case (.failure, .cancelled(let reason)):
            record { try ledger.cancel(job: id, reason: reason) }
            JobFolders.remove(spec.outputFolder, logger)
            logger.notice("cancelled: \(reason)")
        case (.failure, .daemonStopping(let reason)):
            record { try ledger.interrupt(job: id, reason: reason) }
            state.withLock { _ = $0.interrupted.insert(id) }
            JobFolders.remove(spec.outputFolder, logger)
            logger.notice("interrupted (\(reason)); it resumes at the next start")
        case (.failure(let error), nil):
            record { try ledger.fail(job: id, error: "\(error)") }
            JobFolders.remove(spec.outputFolder, logger)
            logger.error("failed: \(error)")
        }
    }

    /// Runs a ledger state change and publishes the row it leaves; an error (e.g. the job was marked
    /// interrupted by a stop that ran out of time) is logged, not thrown: the job thread must end.
    private func record(_ change: () throws -> JobRecord) {
        do {
            updates.publish(JobUpdate(job: try change()))
        } catch {
            logger.error("ledger: \(error)")
        }
    }

    private func makeSpec(_ job: JobRecord, _ settings: Settings) throws -> JobSpec {
        let id = job.id!
        guard let model = try ledger.model(job.modelID) else { throw LedgerError.modelNotFound(job.modelID) }
        let decoded: JobSettings
        do {
            decoded = try job.decodedSettings(as: JobSettings.self)
        } catch {
            throw LedgerError.invalidValue(field: "jobs.settings", value: String(job.settings.prefix(120)),
                                           reason: "not settings this losad understands (\(error))")
        }
        let folderName = JobFolders.folderName(model: model.name, job: id)
        return JobSpec(id: id, modelName: model.name, inputPath: job.inputPath, format: model.format,
                       contentHash: model.contentHash, settings: decoded,
                       outputFolder: settings.outbox + "/." + folderName + ".partial",
                       publishedFolder: settings.outbox + "/" + folderName,
                       checkpointFolder: settings.state + "/jobs/\(id)/checkpoint",
                       resumeFrom: job.checkpointPath, attempt: job.attempts + 1,
                       threads: settings.threads > 0 ? settings.threads : nil)
    }

    private func lowerPriority(_ priority: DaemonConfig.Priority, _ logger: Logger) {
        do {
            try ComputePriority.apply(priority)
        } catch {
            let first = state.withLock { s in defer { s.priorityWarningLogged = true }; return !s.priorityWarningLogged }
            if first { logger.warning("jobs run at the daemon's own CPU priority: \(error)") }
        }
    }

    // MARK: - Reports from the runner

    private func handlers(for slot: Slot, logger: Logger) -> JobContext.Handlers {
        let id = slot.id
        return JobContext.Handlers(
            progress: { [self] progress in
                let now = InboxWatcher.monotonicSeconds()
                let interval = state.withLock { $0.settings.progressInterval }
                let write = slot.live.withLock { live -> Bool in
                    live.progress = progress
                    guard live.lastStage != progress.stage || now - live.lastWrite >= interval else { return false }
                    live.lastStage = progress.stage
                    live.lastWrite = now
                    return true
                }
                guard write else { return }
                do {
                    let job = try ledger.updateProgress(job: id, stage: progress.stage,
                                                        progress: progress.fraction.isFinite ? min(max(progress.fraction, 0), 1) : 0,
                                                        iteration: progress.iteration.flatMap { $0 >= 1 ? $0 : nil },
                                                        step: progress.step.flatMap { $0 >= 0 ? $0 : nil })
                    updates.publish(JobUpdate(job: job, progress: progress))
                } catch {
                    let first = slot.live.withLock { live in defer { live.writeFailureLogged = true }; return !live.writeFailureLogged }
                    if first { logger.warning("cannot record progress: \(error)") }
                }
                publishStatus()
            },
            checkpoint: { [self] path, iteration in
                do {
                    updates.publish(JobUpdate(job: try ledger.recordCheckpoint(job: id, path: path, iteration: iteration),
                                              progress: slot.live.withLock { $0.progress }))
                } catch {
                    logger.warning("cannot record the checkpoint \(path): \(error)")
                }
            },
            layerStatistics: { [self] rows in
                do {
                    try ledger.recordLayerStatistics(rows.map { JobScheduler.statistic($0, job: id) })
                } catch {
                    logger.warning("cannot record layer statistics: \(error)")
                }
            },
            note: { [self] message in
                do {
                    try ledger.note(job: id, message: message, stage: slot.live.withLock { $0.progress?.stage })
                } catch {
                    logger.warning("cannot record a note: \(error)")
                }
            })
    }

    static func statistic(_ row: JobOutcome.LayerRow, job: Int64) -> LayerStatistic {
        LayerStatistic(jobID: job, iteration: row.iteration, layer: row.layer, sparsity: row.sparsity, rank: row.rank,
                       importance: row.importance, reconstructionError: row.reconstructionError)
    }
}
