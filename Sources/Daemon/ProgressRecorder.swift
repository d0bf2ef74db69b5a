import Compression
import Ledger
import Logging

/// Where a running job's reports go: its progress to the ledger at most once per `progressInterval`
/// (every stage change at once) and to every watcher, checkpoints, per-layer figures and notes to the
/// ledger. A write that fails is logged once per job and does not stop the job.
struct ProgressRecorder: Sendable {
    let ledger: Ledger
    let updates: JobUpdateFeed
    /// Seconds between progress writes (the scheduler's setting, which a reload may change).
    let interval: @Sendable () -> Double
    /// Called after each report, to refresh the status line.
    let changed: @Sendable () -> Void

    func handlers(for slot: JobSlot, logger: Logger) -> JobContext.Handlers {
        let id = slot.id
        return JobContext.Handlers(
            progress: { progress in
                let now = MonotonicClock.seconds()
                let interval = interval()
                let write = slot.live.withLock { live -> Bool in
                    live.progress = progress
                    guard live.lastStage != progress.stage || now - live.lastWrite >= interval else { return false }
                    live.lastStage = progress.stage
                    live.lastWrite = now
                    return true
                }
                guard write else { return }
                do {
                    let job = try ledger.updateProgress(job: id, stage: progress.stage.rawValue,
                                                        progress: progress.fraction.isFinite ? min(max(progress.fraction, 0), 1) : 0,
                                                        iteration: progress.iteration >= 1 ? progress.iteration : nil,
                                                        step: progress.steps > 0 ? max(progress.step, 0) : nil)
                    updates.publish(JobUpdate(job: job, progress: progress))
                } catch {
                    let first = slot.live.withLock { live in defer { live.writeFailureLogged = true }; return !live.writeFailureLogged }
                    if first { logger.warning("cannot record progress: \(error)") }
                }
                changed()
            },
            checkpoint: { path, iteration in
                do {
                    updates.publish(JobUpdate(job: try ledger.recordCheckpoint(job: id, path: path, iteration: iteration),
                                              progress: slot.live.withLock { $0.progress }))
                } catch {
                    logger.warning("cannot record the checkpoint \(path): \(error)")
                }
            },
            layerStatistics: { rows in
                do {
                    try ledger.recordLayerStatistics(rows.map { JobCompletion.statistic($0, job: id) })
                } catch {
                    logger.warning("cannot record layer statistics: \(error)")
                }
            },
            note: { message in
                do {
                    try ledger.note(job: id, message: message, stage: slot.live.withLock { $0.progress?.stage.rawValue })
                } catch {
                    logger.warning("cannot record a note: \(error)")
                }
            })
    }
}
