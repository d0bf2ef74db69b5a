import Foundation
import Logging
import Synchronization

/// The way from the inbox to the queue: the `InboxWatcher` reports a model that has settled, `ModelIntake`
/// records it as a queued job (or a failed one, when it does not read), and the scheduler is woken to start
/// it. Candidates are taken one at a time on a dispatch queue, never on the Swift concurrency pool (intake
/// must not wait for a free task thread while it hashes gigabytes).
final class InboxFeed: Sendable {
    private let intake: ModelIntake
    private let scheduler: JobScheduler
    private let status: @Sendable (String) -> Void
    private let logger: Logger
    private let queue = DispatchQueue(label: "losad.intake")
    private let watcher = Mutex<InboxWatcher?>(nil)

    /// - Parameter status: receives the scheduler's status line after each candidate.
    init(intake: ModelIntake, scheduler: JobScheduler, status: @escaping @Sendable (String) -> Void, logger: Logger) {
        self.intake = intake
        self.scheduler = scheduler
        self.status = status
        self.logger = logger
    }

    /// Starts watching `config.folders.inbox`.
    func start(_ config: DaemonConfig) {
        let watcher = InboxWatcher(inbox: config.folders.inbox, settleSeconds: config.watch.settleSeconds,
                                   rescanSeconds: config.watch.rescanSeconds, logger: logger)
        let (queue, intake, scheduler, status) = (queue, intake, scheduler, status)
        watcher.start { event in
            guard case .ready(let candidate) = event else { return }   // refusals: the watcher logged them
            queue.async {
                switch intake.take(candidate) {
                case .enqueued(let job), .failed(let job):
                    scheduler.updates.publish(JobUpdate(job: job))
                    scheduler.wake()
                case .duplicate, .alreadyTaken, .notRecorded:
                    break
                }
                status(scheduler.statusLine())
            }
        }
        self.watcher.withLock { $0 = watcher }
    }

    /// Follows a reloaded configuration: a moved inbox is watched anew, new timings apply at once.
    func follow(_ config: DaemonConfig, previous: DaemonConfig) {
        if config.folders.inbox != previous.folders.inbox {
            logger.notice("inbox moved from \(previous.folders.inbox) to \(config.folders.inbox)")
            stopWatching()
            start(config)
        } else {
            watcher.withLock { $0 }?.update(settleSeconds: config.watch.settleSeconds, rescanSeconds: config.watch.rescanSeconds)
        }
    }

    /// Stops watching and waits until the candidate being recorded, if any, is recorded completely.
    func stop() {
        stopWatching()
        queue.sync {}
    }

    private func stopWatching() {
        let current = watcher.withLock { w in defer { w = nil }; return w }
        if let current, !current.stop() { logger.warning("the inbox watcher did not stop within 5 s") }
    }
}
