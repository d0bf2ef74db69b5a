import Foundation
import Ledger
import Logging

/// How a job's end is recorded once its runner has returned: the success path, and the cancelled,
/// interrupted and failed ends.
///
/// The success path is ordered so that a crash anywhere leaves either a re-runnable job with no
/// visible output or a succeeded job with its output:
///
///     1. publish   the hidden output folder is moved to its final name, durably (fsync, rename, fsync)
///     2. record    one ledger transaction: succeeded, output path, report, figures, per-layer rows
///     3. clean up  the job's state folder (its checkpoints) is removed
///
/// A crash before 2 leaves the job marked running: at the next start it is queued again, and its
/// published or half-written output is removed first (`JobScheduler.start`). A crash after 2 leaves a
/// succeeded job with its output; a state folder left by a crash before 3 is removed at that start too.
struct JobCompletion: Sendable {
    let ledger: Ledger
    let updates: JobUpdateFeed

    /// How the job ended, for the scheduler's own books.
    enum End { case succeeded, failed, cancelled, interrupted, dropped }

    func conclude(_ spec: JobSpec, folders: JobFolders, _ outcome: Result<JobOutcome, any Error>,
                  stop: JobContext.StopReason?, logger: Logger) -> End {
        let id = spec.id
        // A stop that ran out of time has already queued the job again; what the runner returns late changes nothing.
        guard (try? ledger.job(id))??.state == .running else {
            logger.warning("the runner returned after the job stopped counting as running; its result is dropped")
            JobFolders.remove(folders.staging, logger)
            return .dropped
        }
        // The staging folder goes before the ledger says how the job ended: whoever reads that state finds nothing
        // of the job left behind.
        switch (outcome, stop) {
        case (.success(let result), _):
            return succeed(spec, folders: folders, result, logger: logger)
        case (.failure, .cancelled(let reason)):
            JobFolders.remove(folders.staging, logger)
            updates.record(logger) { try ledger.cancel(job: id, reason: reason) }
            logger.notice("cancelled: \(reason)")
            return .cancelled
        case (.failure, .daemonStopping(let reason)):
            JobFolders.remove(folders.staging, logger)
            updates.record(logger) { try ledger.interrupt(job: id, reason: reason) }
            logger.notice("interrupted (\(reason)); it resumes at the next start")
            return .interrupted
        case (.failure(let error), nil):
            JobFolders.remove(folders.staging, logger)
            updates.record(logger) { try ledger.fail(job: id, error: "\(error)") }
            logger.error("failed: \(error)")
            return .failed
        }
    }

    private func succeed(_ spec: JobSpec, folders: JobFolders, _ result: JobOutcome, logger: Logger) -> End {
        let id = spec.id
        CrashPoint.reach(.beforePublishing)
        let folder: String, published: JobOutcome
        do {
            (folder, published) = try JobFolders.publish(folders.staging, as: folders.published, outcome: result)
        } catch {
            logger.error("finished, but its output could not be published: \(error)")
            updates.record(logger) { try ledger.fail(job: id, error: "its output could not be published: \(error)") }
            JobFolders.remove(folders.staging, logger)
            return .failed
        }
        CrashPoint.reach(.afterPublishing)
        let metrics = published.metrics.map { JobMetric(jobID: id, name: $0.name, value: $0.value, unit: $0.unit) }
        let rows = published.layerStatistics.map { JobCompletion.statistic($0, job: id) }
        do {
            let job = try ledger.succeed(job: id, outputPath: published.outputPath, reportPath: published.reportPath,
                                         metrics: metrics, layerStatistics: rows)
            updates.publish(JobUpdate(job: job))
        } catch {
            // Not recorded: the output must not stay visible for a job the ledger does not call succeeded.
            logger.error("finished, but the ledger did not record it: \(error); its output is removed")
            JobFolders.remove(folder, logger)
            updates.record(logger) { try ledger.fail(job: id, error: "its success could not be recorded: \(error)") }
            return .failed
        }
        CrashPoint.reach(.afterRecording)
        JobFolders.remove(folders.job, logger)   // done: its checkpoints are no longer needed
        logger.notice("succeeded: \(published.outputPath)")
        return .succeeded
    }

    static func statistic(_ row: JobOutcome.LayerRow, job: Int64) -> LayerStatistic {
        LayerStatistic(jobID: job, iteration: row.iteration, layer: row.layer, sparsity: row.sparsity, rank: row.rank,
                       importance: row.importance, reconstructionError: row.reconstructionError)
    }
}
