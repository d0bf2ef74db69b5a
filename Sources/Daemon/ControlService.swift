import Control
import Foundation
import Ledger
import Logging

/// `io.losa.Manager` (module Control, Sources/Control/io.losa.Manager.varlink) served by the daemon's
/// `Manager`: each method calls the manager and answers in the interface's types; the manager's
/// errors become the interface's (JobNotFound, InvalidState, InvalidModel, InvalidConfiguration,
/// InternalError, and org.varlink.service.InvalidParameter for a setting out of range).
///
/// The server has already checked the caller's right to change state (`AccessPolicy`). Every call
/// into the manager runs on a dispatch queue, never on a Swift concurrency or NIO thread: ledger
/// reads wait for SQLite, and `Submit` reads and hashes the whole model.
public struct ControlService: ManagerService {
    public let manager: Manager
    private let compute: @Sendable (DaemonConfig) -> ComputeDescription
    private let connections: @Sendable () -> Int
    private let logger: Logger

    /// - Parameters:
    ///   - compute: the device and kernel `Status` reports (`ComputeDescription.current` in losad).
    ///   - connections: control connections open now, for `Metrics`.
    public init(manager: Manager, compute: @escaping @Sendable (DaemonConfig) -> ComputeDescription,
                connections: @escaping @Sendable () -> Int = { 0 }, logger: Logger = Logger(label: "losad.control")) {
        self.manager = manager
        self.compute = compute
        self.connections = connections
        self.logger = logger
    }

    // MARK: - Reading

    public func status(caller: PeerCredentials) async throws -> StatusReply {
        try await call { manager in
            let status = try manager.status()
            let compute = compute(manager.configuration)
            return StatusReply(state: Self.daemonState(status), version: status.version, queued: status.queued,
                               running: status.running.map { ControlReplies.job($0.job, progress: $0.progress) },
                               device: compute.device, kernel: compute.kernel, inbox: status.folders.inbox,
                               outbox: status.folders.outbox, uptimeSeconds: status.uptimeSeconds)
        }
    }

    public func listJobs(_ parameters: ListJobsParameters, caller: PeerCredentials) async throws -> ListJobsReply {
        try await call { manager in
            let listings = try manager.jobs(states: parameters.state.map(ControlReplies.ledgerStates),
                                            limit: parameters.limit ?? ListJobsParameters.defaultLimit)
            return ListJobsReply(jobs: listings.map { ControlReplies.job($0.job, progress: $0.progress) })
        }
    }

    public func getJob(id: Int, caller: PeerCredentials) async throws -> GetJobReply {
        try await call { manager in ControlReplies.getJob(try manager.job(Int64(id))) }
    }

    public func metrics(caller: PeerCredentials) async throws -> MetricsReply {
        let open = connections()
        return try await call { manager in
            let live = ControlMetrics.Live(status: try manager.status(), connections: open,
                                           watchStreams: manager.scheduler.updates.subscriberCount)
            return MetricsReply(metrics: ControlMetrics.families(live, jobs: try manager.metrics()))
        }
    }

    /// Follows job `id`, or the one running now, or else the first queued; with neither, the next job
    /// that is queued or starts. The stream unsubscribes from the scheduler when its consumer goes away.
    public func watch(id: Int?, caller: PeerCredentials) async throws -> AsyncThrowingStream<WatchReply, any Error> {
        let (target, updates) = try await call { manager -> (Int64?, AsyncStream<JobUpdate>) in
            // A slot outlives its job by a moment (the job's thread is finishing), so the ledger says which run.
            let running = manager.scheduler.runningJobs().map(\.id).first { (try? manager.ledger.job($0))??.state == .running }
            let target = try id.map(Int64.init) ?? running ?? manager.ledger.queuedJobs().first?.id
            return (target, try manager.watch(job: target))
        }
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: WatchReply.self)
        let producer = Task {
            var follower = WatchFollower(job: target)
            for await update in updates {
                guard let reply = follower.reply(to: update) else { continue }
                continuation.yield(reply)
                if reply.job.state.isFinal { break }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in producer.cancel() }
        return stream
    }

    // MARK: - Changing

    /// Queues the model at `parameters.path` with the given settings over the configured ones. The
    /// same model with the same settings already in the ledger is not queued twice: the reply is that job.
    public func submit(_ parameters: SubmitParameters, caller: PeerCredentials) async throws -> JobReply {
        let overrides = try Self.overrides(parameters)
        return try await call { manager in
            let outcome = try manager.submit(path: parameters.path, overrides: overrides)
            let job = outcome.job
            logger.notice("\(caller) submitted \(parameters.path): job \(job.id ?? 0)\(outcome == .enqueued(job) ? "" : " (already there)")",
                          metadata: ["job_id": "\(job.id ?? 0)"])
            return JobReply(job: ControlReplies.job(job, progress: nil))
        }
    }

    public func cancel(id: Int, caller: PeerCredentials) async throws -> JobReply {
        try await call { manager in
            let job = try manager.cancel(job: Int64(id))
            logger.notice("\(caller) cancelled job \(id)", metadata: ["job_id": "\(id)"])
            return JobReply(job: ControlReplies.job(job, progress: manager.scheduler.progress(of: Int64(id))))
        }
    }

    public func retry(id: Int, caller: PeerCredentials) async throws -> JobReply {
        try await call { manager in
            let job = try manager.retry(job: Int64(id))
            logger.notice("\(caller) retried job \(id)", metadata: ["job_id": "\(id)"])
            return JobReply(job: ControlReplies.job(job, progress: nil))
        }
    }

    public func pause(caller: PeerCredentials) async throws -> QueueReply {
        try await call { manager in
            manager.pause()
            return QueueReply(state: Self.daemonState(try manager.status()))
        }
    }

    public func resume(caller: PeerCredentials) async throws -> QueueReply {
        try await call { manager in
            try manager.resume()
            return QueueReply(state: Self.daemonState(try manager.status()))
        }
    }

    /// Re-reads the configuration as SIGHUP does; anything that keeps the new file from taking effect
    /// is InvalidConfiguration (the running configuration stays).
    public func reload(caller: PeerCredentials) async throws {
        try await call { manager in
            do {
                let result = try manager.reload()
                logger.notice("\(caller) reloaded the configuration\(result.changed ? "" : " (unchanged)")")
            } catch let error as ManagerError {
                throw error
            } catch {
                throw ManagerError.invalidConfiguration("\(error)")
            }
        }
    }

    // MARK: - Parts

    static func daemonState(_ status: DaemonStatus) -> DaemonState {
        if status.stopping { return .stopping }
        if status.paused { return .paused }
        return status.running.isEmpty ? .idle : .running
    }

    /// The submitted settings as the daemon's; a word it does not know is an invalid parameter.
    static func overrides(_ parameters: SubmitParameters) throws -> JobSettings.Overrides {
        func parse<T: RawRepresentable<String>>(_ value: String?, _ name: String, as type: T.Type) throws -> T? {
            guard let value else { return nil }
            guard let parsed = T(rawValue: value) else { throw VarlinkServiceError.invalidParameter(parameter: name) }
            return parsed
        }
        return JobSettings.Overrides(
            sparsity: parameters.sparsity,
            method: try parse(parameters.method, "method", as: DaemonConfig.Method.self),
            pattern: try parse(parameters.pattern, "pattern", as: DaemonConfig.Pattern.self),
            allocation: try parse(parameters.allocation, "allocation", as: DaemonConfig.Allocation.self),
            recovery: try parse(parameters.recovery, "recovery", as: DaemonConfig.Recovery.self),
            profile: try parse(parameters.profile, "profile", as: DaemonConfig.Profile.self),
            calibrationCorpus: parameters.calibration, evaluationCorpus: parameters.evaluation)
    }

    /// Runs `body` with the manager on a dispatch thread and returns what it returns, its errors in
    /// the interface's terms.
    private func call<T: Sendable>(_ body: @escaping @Sendable (Manager) throws -> T) async throws -> T {
        let manager = manager, logger = logger
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(with: Result {
                    do {
                        return try body(manager)
                    } catch {
                        throw Self.interfaceError(error, manager: manager, logger: logger)
                    }
                })
            }
        }
    }

    /// The interface's error for a manager error. A setting out of range has no error of its own in
    /// io.losa.Manager, so it is the standard InvalidParameter naming the parameter (the sentence
    /// with the allowed values goes to the log).
    static func interfaceError(_ error: any Error, manager: Manager, logger: Logger) -> any Error {
        switch error {
        case let error as ManagerError:
            switch error {
            case .jobNotFound(let id):
                return Control.ManagerError.jobNotFound(id: Int(id))
            case let .invalidModel(path, reason):
                return Control.ManagerError.invalidModel(path: path, reason: reason)
            case let .invalidSettings(key, _, _):
                logger.notice("submission refused: \(error)")
                return VarlinkServiceError.invalidParameter(parameter: parameterName(key))
            case let .invalidState(job, reason):
                let state = (try? manager.ledger.job(job))?.map { ControlReplies.state($0.state).rawValue } ?? "unknown"
                return Control.ManagerError.invalidState(id: Int(job), state: state, reason: reason)
            case .invalidConfiguration(let reason):
                return Control.ManagerError.invalidConfiguration(file: manager.configPath, reason: reason)
            case .shuttingDown:
                return Control.ManagerError.invalidState(id: nil, state: DaemonState.stopping.rawValue,
                                                         reason: "losad is stopping and takes no new work")
            case .internalError(let message):
                return Control.ManagerError.internalError(message: message)
            }
        case let error as VarlinkServiceError:
            return error
        case let error as Control.ManagerError:
            return error
        default:
            return Control.ManagerError.internalError(message: "\(error)")
        }
    }

    /// The `Submit` parameter a `[job]` key comes from.
    static func parameterName(_ key: String) -> String {
        switch key {
        case "calibration_corpus": return "calibration"
        case "evaluation_corpus": return "evaluation"
        default: return key
        }
    }
}
