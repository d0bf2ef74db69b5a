import Compression
import Logging
import Synchronization

/// The running job's line back to the daemon: whether to stop, and where to report progress,
/// checkpoints, per-layer figures and notes. The scheduler makes one per job start and passes it
/// to `JobRunner.run`; every method may be called from any thread the runner uses.
public final class JobContext: Sendable {
    /// Why the daemon wants the job to stop.
    public enum StopReason: Sendable, Equatable {
        /// A user cancelled the job; it ends as cancelled (a retry resumes from its checkpoint).
        case cancelled(String)
        /// The daemon is stopping; the job is queued again and resumes on the next start, so a runner
        /// may spend a moment saving what it has (within `DaemonConfig.Service.stopTimeoutSeconds`).
        case daemonStopping(String)
    }

    /// What the context forwards to; the scheduler supplies them (tests may too).
    public struct Handlers: Sendable {
        public var progress: @Sendable (CompressionProgress) -> Void
        public var checkpoint: @Sendable (_ path: String, _ iteration: Int) -> Void
        public var layerStatistics: @Sendable ([JobOutcome.LayerRow]) -> Void
        public var note: @Sendable (String) -> Void

        public init(progress: @escaping @Sendable (CompressionProgress) -> Void = { _ in },
                    checkpoint: @escaping @Sendable (_ path: String, _ iteration: Int) -> Void = { _, _ in },
                    layerStatistics: @escaping @Sendable ([JobOutcome.LayerRow]) -> Void = { _ in },
                    note: @escaping @Sendable (String) -> Void = { _ in }) {
            self.progress = progress
            self.checkpoint = checkpoint
            self.layerStatistics = layerStatistics
            self.note = note
        }
    }

    private let request = Mutex<StopReason?>(nil)
    private let stage = Mutex<String?>(nil)
    private let handlers: Handlers
    private let baseLogger: Logger

    /// - Parameter logger: carries the job's `job_id` and `model` metadata; `logger` adds `stage`.
    public init(logger: Logger, handlers: Handlers) {
        self.baseLogger = logger
        self.handlers = handlers
    }

    // MARK: - Stopping

    /// Why the job should stop, once someone asked; nil while it should go on.
    public var stopReason: StopReason? { request.withLock { $0 } }

    /// Whether the job should stop at its next step. Cheap: poll it between steps.
    public var isStopRequested: Bool { request.withLock { $0 != nil } }

    /// `isStopRequested` as a closure, for engines that take one (`CompressionJob`'s `shouldStop`).
    public var shouldStop: @Sendable () -> Bool { { [self] in isStopRequested } }

    /// Throws `JobRunnerError.stopped` once a stop was asked for.
    public func checkStop() throws {
        if let reason = stopReason { throw JobRunnerError.stopped(reason) }
    }

    /// Asks the job to stop. A cancel replaces a daemon stop (the user's intent is the more
    /// specific one); a daemon stop does not replace a cancel.
    public func requestStop(_ reason: StopReason) {
        request.withLock { current in
            switch (current, reason) {
            case (nil, _), (.daemonStopping, .cancelled): current = reason
            default: break
            }
        }
    }

    // MARK: - Reporting

    /// Where the job is; the scheduler writes it to the ledger at most about once a second (every
    /// stage change at once) and updates systemd's STATUS line.
    public func report(_ progress: CompressionProgress) {
        stage.withLock { $0 = progress.stage.rawValue }
        handlers.progress(progress)
    }

    /// A LoSA checkpoint after `iteration` is complete on disk at `path` (inside the job's checkpoint
    /// folder); recorded so that a restarted job knows where it resumes.
    public func checkpointWritten(path: String, iteration: Int) { handlers.checkpoint(path, iteration) }

    /// Per-layer figures of an iteration, recorded in the ledger as they come.
    public func record(layerStatistics rows: [JobOutcome.LayerRow]) { handlers.layerStatistics(rows) }

    /// A line in the job's history (a warning, a figure worth keeping).
    public func note(_ message: String) { handlers.note(message) }

    /// The job's logger, with `job_id`, `model` and the current `stage` as metadata (JOB_ID, MODEL and
    /// STAGE in the journal).
    public var logger: Logger {
        var logger = baseLogger
        if let stage = stage.withLock({ $0 }) { logger[metadataKey: "stage"] = "\(stage)" }
        return logger
    }
}
