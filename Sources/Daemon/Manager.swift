#if canImport(Glibc)
import Glibc
#endif
import Compression
import Foundation
import Ledger
import Logging

/// The daemon's API: every operation `losactl` can ask for, as the control server calls them
/// (io.losa.Manager in ARCHITECTURE.md). Reading is cheap and never blocks on a running job;
/// `submit` blocks while it hashes the model, so call it off any event loop. Errors are
/// `RequestError`, whose `code` names the protocol error.
public final class Manager: Sendable {
    /// The part of the daemon the manager needs besides ledger and scheduler.
    public struct Hooks: Sendable {
        /// The configuration in force.
        public var configuration: @Sendable () -> DaemonConfig
        /// Re-reads the configuration file (what SIGHUP does).
        public var reload: @Sendable () throws -> ReloadResult

        public init(configuration: @escaping @Sendable () -> DaemonConfig, reload: @escaping @Sendable () throws -> ReloadResult) {
            self.configuration = configuration
            self.reload = reload
        }
    }

    public let ledger: Ledger
    public let scheduler: JobScheduler
    public let intake: ModelIntake
    public let version: String
    public let configPath: String
    public let startedAt: Date
    private let hooks: Hooks

    public init(ledger: Ledger, scheduler: JobScheduler, intake: ModelIntake, hooks: Hooks, version: String,
                configPath: String, startedAt: Date = Date()) {
        self.ledger = ledger
        self.scheduler = scheduler
        self.intake = intake
        self.hooks = hooks
        self.version = version
        self.configPath = configPath
        self.startedAt = startedAt
    }

    // MARK: - Reading

    /// The configuration in force.
    public var configuration: DaemonConfig { hooks.configuration() }

    /// The daemon as a whole: what runs, what waits, how much memory there is.
    public func status() throws -> DaemonStatus {
        let config = hooks.configuration()
        let running = scheduler.runningJobs()
        let listings = try running.compactMap { slot -> JobListing? in
            guard let job = try ledger.job(slot.id) else { return nil }
            return JobListing(job: job, modelName: slot.modelName, progress: slot.progress)
        }
        return DaemonStatus(version: version, pid: getpid(), startedAt: startedAt,
                            uptimeSeconds: Date().timeIntervalSince(startedAt), configPath: configPath,
                            folders: config.folders, paused: scheduler.isPaused, stopping: scheduler.isStopping,
                            running: listings, queued: try wrap { try ledger.queuedJobs().count },
                            jobCounts: try wrap { try ledger.jobCounts() }, runningJobsLimit: config.scheduler.runningJobs,
                            priority: config.scheduler.priority, memoryLimit: config.scheduler.memoryLimit,
                            memory: MemoryAvailability.read(), statusLine: scheduler.statusLine())
    }

    /// Jobs newest first, only those in `states` when given, at most `limit`.
    public func jobs(states: Set<JobRecord.State>? = nil, limit: Int? = 100) throws -> [JobListing] {
        let jobs = try wrap { try ledger.jobs(in: states, limit: limit) }
        var names: [Int64: String] = [:]
        return try jobs.map { job in
            if names[job.modelID] == nil { names[job.modelID] = try wrap { try ledger.model(job.modelID)?.name } ?? "?" }
            return JobListing(job: job, modelName: names[job.modelID]!,
                              progress: job.state == .running ? scheduler.progress(of: job.id!) : nil)
        }
    }

    /// One job with its model, history, per-layer statistics, metrics and live progress.
    public func job(_ id: Int64) throws -> JobView {
        guard let details = try wrap({ try ledger.details(job: id) }) else { throw RequestError.jobNotFound(id) }
        return JobView(details: details, progress: scheduler.progress(of: id))
    }

    /// Figures of one job, or of the most recent `limit` jobs that have any.
    public func metrics(job id: Int64? = nil, limit: Int = 50) throws -> [JobMetrics] {
        let ids: [Int64]
        if let id {
            ids = [id]
        } else {
            ids = try wrap { try ledger.jobs(limit: max(0, limit) * 4) }.compactMap(\.id)
        }
        var rows: [JobMetrics] = []
        for jobID in ids {
            guard let details = try wrap({ try ledger.details(job: jobID) }) else {
                if id != nil { throw RequestError.jobNotFound(jobID) }
                continue
            }
            if id == nil && details.metrics.isEmpty { continue }
            rows.append(JobMetrics(jobID: jobID, modelName: details.model.name, state: details.job.state, metrics: details.metrics))
            if rows.count >= limit { break }
        }
        return rows
    }

    /// Changes from now on: every job's, or `job`'s only. Ends when the daemon stops or the caller
    /// stops reading. A stream for one job starts with its current row.
    public func watch(job id: Int64? = nil) throws -> AsyncStream<JobUpdate> {
        guard let id else { return scheduler.updates.subscribe() }
        let stream = scheduler.updates.subscribe(job: id)
        guard let current = try wrap({ try ledger.job(id) }) else { throw RequestError.jobNotFound(id) }
        let first = JobUpdate(job: current, progress: scheduler.progress(of: id))
        return AsyncStream { continuation in
            continuation.yield(first)
            let task = Task {
                for await update in stream { continuation.yield(update) }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    // MARK: - Changing

    /// Queues the model at `path` (absolute) with the configured settings changed by `changes`.
    public func submit(path: String, changes: [JobSettingKey: JobSettings.Value] = [:]) throws -> EnqueueOutcome {
        guard !scheduler.isStopping else { throw RequestError.shuttingDown }
        let outcome = try intake.submit(path: path, changes: changes)
        if case .enqueued(let job) = outcome {
            scheduler.updates.publish(JobUpdate(job: job))
            scheduler.wake()
        }
        return outcome
    }

    /// Cancels a queued job, or stops a running one at its next step (it shows as cancelled within seconds).
    @discardableResult
    public func cancel(job id: Int64) throws -> JobRecord {
        try wrap { try scheduler.cancel(job: id) }
    }

    /// Queues a failed, cancelled or refused job again; it resumes from its last checkpoint.
    @discardableResult
    public func retry(job id: Int64) throws -> JobRecord {
        guard !scheduler.isStopping else { throw RequestError.shuttingDown }
        return try wrap { try scheduler.retry(job: id) }
    }

    /// Stops starting queued jobs (running ones go on). Returns whether it was running before.
    @discardableResult
    public func pause() -> Bool { scheduler.pause() }

    /// Starts queued jobs again. Returns whether it was paused before.
    @discardableResult
    public func resume() throws -> Bool {
        guard !scheduler.isStopping else { throw RequestError.shuttingDown }
        return scheduler.resume()
    }

    /// Re-reads the configuration file; an invalid one is refused and the running one stays.
    public func reload() throws -> ReloadResult {
        do {
            return try hooks.reload()
        } catch let error as ConfigError {
            throw RequestError.invalidConfiguration("\(error)")
        }
    }

    /// Runs a ledger call, turning its errors into `RequestError`.
    private func wrap<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as RequestError {
            throw error
        } catch LedgerError.jobNotFound(let id) {
            throw RequestError.jobNotFound(id)
        } catch let LedgerError.invalidTransition(job, operation, from, allowed) {
            let states = allowed.map(\.rawValue).joined(separator: " or ")
            throw RequestError.invalidState(job: job, reason: "it is \(from.rawValue); only a job that is \(states) can be \(Manager.pastTense(operation))")
        } catch {
            throw RequestError.internalError("\(error)")
        }
    }

    static func pastTense(_ operation: String) -> String {
        switch operation {
        case "cancel": return "cancelled"
        case "retry": return "retried"
        case "start": return "started"
        default: return "\(operation)ed"
        }
    }
}

// MARK: - What the operations return

/// The daemon at one moment (`losactl status`).
public struct DaemonStatus: Sendable, Equatable {
    public var version: String
    public var pid: Int32
    public var startedAt: Date
    public var uptimeSeconds: Double
    public var configPath: String
    public var folders: DaemonConfig.Folders
    public var paused: Bool
    public var stopping: Bool
    /// Jobs holding a slot, by id.
    public var running: [JobListing]
    public var queued: Int
    /// How many jobs are in each state (states with none are absent).
    public var jobCounts: [JobRecord.State: Int]
    public var runningJobsLimit: Int
    public var priority: DaemonConfig.Priority
    public var memoryLimit: DaemonConfig.MemoryLimit
    public var memory: MemoryAvailability
    /// The line systemd shows (STATUS=).
    public var statusLine: String
}

/// A job in a list, with its model's name and, while it runs, the runner's last report.
public struct JobListing: Sendable, Equatable {
    public var job: JobRecord
    public var modelName: String
    public var progress: CompressionProgress?
}

/// One job in full (`losactl show`).
public struct JobView: Sendable, Equatable {
    public var details: JobDetails
    public var progress: CompressionProgress?
}

/// A job's figures (`losactl metrics`).
public struct JobMetrics: Sendable, Equatable {
    public var jobID: Int64
    public var modelName: String
    public var state: JobRecord.State
    /// By name.
    public var metrics: [JobMetric]
}

/// What a reload changed.
public struct ReloadResult: Sendable, Equatable {
    /// Keys whose new value waits for a restart (the old one stays in use).
    public var restartNeeded: [String]
    /// Whether the file differed from the configuration in force.
    public var changed: Bool

    public init(restartNeeded: [String], changed: Bool) {
        self.restartNeeded = restartNeeded
        self.changed = changed
    }
}
