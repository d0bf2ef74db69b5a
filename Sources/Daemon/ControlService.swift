import Compression
import Control
import Foundation
import Ledger
import Logging

/// `io.losa.Manager` (module Control, Sources/Control/io.losa.Manager.varlink) served by the daemon's
/// `Manager`: each method calls the manager and answers in the interface's types; the manager's
/// errors become the interface's (JobNotFound, InvalidState, InvalidModel, InvalidSetting,
/// InvalidConfiguration, InternalError).
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
        let changes = Self.changes(parameters)
        return try await call { manager in
            let outcome = try manager.submit(path: parameters.path, changes: changes)
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
            } catch let error as RequestError {
                throw error
            } catch {
                throw RequestError.invalidConfiguration("\(error)")
            }
        }
    }

    // MARK: - Parts

    static func daemonState(_ status: DaemonStatus) -> DaemonState {
        if status.stopping { return .stopping }
        if status.paused { return .paused }
        return status.running.isEmpty ? .idle : .running
    }

    /// The submitted settings as the job settings' values, by the `Submit` parameter they come from; the
    /// manager parses them (`JobSettings.applying`), as the configuration's `[job]` keys are parsed.
    static func changes(_ parameters: SubmitParameters) -> [JobSettingKey: JobSettings.Value] {
        var changes: [JobSettingKey: JobSettings.Value] = [:]
        if let sparsity = parameters.sparsity { changes[.sparsity] = .number(sparsity) }
        if let outputs = parameters.outputs { changes[.outputs] = .list(outputs) }
        if let temperature = parameters.kdTemperature { changes[.kdTemperature] = .number(temperature) }
        if let weight = parameters.hiddenLossWeight { changes[.hiddenLossWeight] = .number(weight) }
        let words: [(JobSettingKey, String?)] = [(.method, parameters.method), (.pattern, parameters.pattern),
                                                  (.allocation, parameters.allocation), (.recovery, parameters.recovery),
                                                  (.profile, parameters.profile), (.calibrationCorpus, parameters.calibration),
                                                  (.evaluationCorpus, parameters.evaluation), (.objective, parameters.objective),
                                                  (.weightReconstruction, parameters.weightReconstruction)]
        for (key, value) in words { if let value { changes[key] = .text(value) } }
        return changes
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

    /// The interface's error for a manager error; a refused setting keeps its sentence (InvalidSetting).
    static func interfaceError(_ error: any Error, manager: Manager, logger: Logger) -> any Error {
        switch error {
        case let error as RequestError:
            switch error {
            case .jobNotFound(let id):
                return Control.ManagerError.jobNotFound(id: Int(id))
            case let .invalidModel(path, reason):
                return Control.ManagerError.invalidModel(path: path, reason: reason)
            case .invalidSetting(let setting):
                logger.notice("submission refused: \(setting)")
                guard case .invalidSetting(let field, _, _) = setting else {
                    return Control.ManagerError.internalError(message: "\(setting)")
                }
                return Control.ManagerError.invalidSetting(parameter: parameterName(field), message: "\(setting)")
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
