#if canImport(Glibc)
import Glibc
#endif
import Compression
import Control
import Foundation
import Ledger
import Logging
import Synchronization

/// Runs queued jobs from the ledger, first in first out, `running_jobs` at a time, each on its own
/// OS thread at the configured CPU class (a thread's scheduling class is inherited by the threads it
/// starts, so a job's compute threads follow it; Swift concurrency's shared pool is never lowered).
///
/// A job's life here, each step in its own room: a slot is reserved (`JobSlot`) → admission
/// (`JobAdmission`: the runner's memory estimate against `MemoryAdmission`; a refusal is recorded with
/// its reason) → `Ledger.start` → `JobRunner.run` with a `JobContext` whose reports go to the ledger
/// (`ProgressRecorder`) → its end recorded (`JobCompletion`: succeeded — the hidden output published and
/// the success recorded in one transaction — failed, cancelled, or, when the daemon stops, interrupted
/// and queued again, to resume from the job's checkpoint folder at the next start). The status line
/// (`StatusLine`) goes to `status` (systemd's STATUS=).
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
        public var progress: CompressionProgress?
        /// Whether a stop was asked for and the runner has not returned yet.
        public var stopping: Bool
    }

    public let ledger: Ledger
    public let updates = JobUpdateFeed()
    private let admission: JobAdmission
    private let runner: any JobRunner
    private let status: @Sendable (String) -> Void
    private let logger: Logger
    private let state: Mutex<State>
    private let threadsDone = DispatchGroup()
    private let statusLock = NSLock()

    struct State {
        var settings: Settings
        var started = false
        var paused = false
        var stopping = false
        var slots: [Int64: JobSlot] = [:]
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
        self.admission = JobAdmission(ledger: ledger, runner: runner, memory: memory)
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
        removeLeftovers(recovered: recovered)
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
        var launches: [(JobRecord, JobSlot, Settings)] = []
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
                let slot = JobSlot(id: job.id!, modelName: name)
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
    public func progress(of job: Int64) -> CompressionProgress? {
        state.withLock { $0.slots[job] }?.live.withLock { $0.progress }
    }

    /// One line for systemd's STATUS= (`StatusLine`).
    public func statusLine() -> String {
        let (running, paused, stopping) = state.withLock { s in (Array(s.slots.values), s.paused, s.stopping) }
        let queued = ((try? ledger.queuedJobs()) ?? []).filter { job in !running.contains { $0.id == job.id } }.count
        let jobs = running.map { slot in
            let live = slot.live.withLock { $0 }
            return StatusLine.Running(id: slot.id, modelName: live.modelName, progress: live.progress)
        }
        return StatusLine.compose(running: jobs, queued: queued, paused: paused, stopping: stopping, ledger: ledger)
    }

    /// Computes and sends the line under one lock, so that lines from different job threads cannot
    /// arrive out of order (a stale line last).
    private func publishStatus() {
        statusLock.lock()
        defer { statusLock.unlock() }
        status(statusLine())
    }

    // MARK: - One job (on its own thread)

    private func finish(_ slot: JobSlot) {
        state.withLock { _ = $0.slots.removeValue(forKey: slot.id) }
        threadsDone.leave()
        wake()
        publishStatus()
    }

    private func execute(_ queued: JobRecord, _ slot: JobSlot, _ settings: Settings) {
        let id = slot.id
        var logger = self.logger
        logger[metadataKey: "job_id"] = "\(id)"
        lowerPriority(settings.priority, logger)

        let spec: JobSpec, estimate: MemoryEstimate
        switch admission.decide(queued, slot: slot, settings: settings, logger: logger) {
        case .start(let admitted, let estimated): (spec, estimate) = (admitted, estimated)
        case .fail(let error): return updates.record(logger) { try ledger.fail(job: id, error: error) }
        case .refuse(let reason): return updates.record(logger) { try ledger.refuse(job: id, reason: reason) }
        case .cancel(let reason): return updates.record(logger) { try ledger.cancel(job: id, reason: reason) }
        case .leaveQueued: return
        }
        logger[metadataKey: "model"] = "\(spec.modelName)"
        let folders = JobFolders(outbox: settings.outbox, state: settings.state, model: spec.modelName, job: id)
        var attempt = spec
        do {
            let started = try ledger.start(job: id)
            updates.publish(JobUpdate(job: started))
            attempt.attempt = started.attempts
            try JobFolders.prepare(output: folders.staging, checkpoint: folders.checkpoint)
        } catch {
            logger.error("cannot start job \(id): \(error)")
            return updates.record(logger) { try ledger.fail(job: id, error: "cannot start: \(error)") }
        }
        let resuming = attempt.resumeFrom.map { ", resuming from \($0)" } ?? ""
        logger.info("started (attempt \(attempt.attempt), estimated peak \(Quantities.bytes(estimate.totalBytes)))\(resuming)")

        let recorder = ProgressRecorder(ledger: ledger, updates: updates,
                                        interval: { [self] in state.withLock { $0.settings.progressInterval } },
                                        changed: { [self] in publishStatus() })
        let context = JobContext(logger: logger, handlers: recorder.handlers(for: slot, logger: logger))
        slot.context.withLock { $0 = context }
        if let early = slot.earlyStop.withLock({ $0 }) { context.requestStop(early) }   // asked between admission and now
        publishStatus()

        let outcome: Result<JobOutcome, any Error>
        do {
            outcome = .success(try runner.run(attempt, context: context))
        } catch {
            outcome = .failure(error)
        }
        let end = JobCompletion(ledger: ledger, updates: updates)
            .conclude(attempt, folders: folders, outcome, stop: context.stopReason, logger: logger)
        if end == .interrupted { state.withLock { _ = $0.interrupted.insert(id) } }
    }

    /// What a crash or `kill -9` left of the jobs it interrupted, and of jobs that succeeded just before
    /// it: an interrupted job's output, hidden or already published (its success was never recorded, so
    /// it runs again and publishes anew), and a succeeded job's state folder.
    private func removeLeftovers(recovered: [JobRecord]) {
        let settings = self.settings
        for job in recovered {
            guard let model = try? ledger.model(job.modelID) else { continue }
            let folders = JobFolders(outbox: settings.outbox, state: settings.state, model: model.name, job: job.id!)
            for path in [folders.staging, folders.published] where FileManager.default.fileExists(atPath: path) {
                logger.notice("removing \(path), the unrecorded output of interrupted job \(job.id!)", metadata: ["job_id": "\(job.id!)"])
                JobFolders.remove(path, logger)
            }
        }
        let jobs = settings.state + "/jobs"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: jobs)) ?? [] {
            guard let id = Int64(name), (try? ledger.job(id))??.state == .succeeded else { continue }
            JobFolders.remove(jobs + "/" + name, logger)
        }
    }

    private func lowerPriority(_ priority: DaemonConfig.Priority, _ logger: Logger) {
        do {
            try ComputePriority.apply(priority)
        } catch {
            let first = state.withLock { s in defer { s.priorityWarningLogged = true }; return !s.priorityWarningLogged }
            if first { logger.warning("jobs run at the daemon's own CPU priority: \(error)") }
        }
    }
}
