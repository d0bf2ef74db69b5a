import Compression
import Foundation
import Ledger
import Logging

/// Whether a queued job may start now: its row read into a `JobSpec`, the runner's memory estimate
/// compared with what the machine and `scheduler.memory_limit` allow (`MemoryAdmission`), and a cancel
/// asked for meanwhile honoured. A refusal is recorded with its reason; nothing here starts the job.
struct JobAdmission: Sendable {
    let ledger: Ledger
    let runner: any JobRunner
    let memory: @Sendable () -> MemoryAvailability

    /// What admission decided for one job.
    enum Decision {
        case start(JobSpec, MemoryEstimate)
        case fail(String)
        case refuse(String)
        case cancel(String)
        /// A daemon stop came first: the job stays queued.
        case leaveQueued
    }

    func decide(_ queued: JobRecord, slot: JobSlot, settings: JobScheduler.Settings, logger: Logger) -> Decision {
        let id = slot.id
        var spec: JobSpec
        do {
            spec = try Self.spec(queued, ledger: ledger, settings: settings)
        } catch {
            return .fail("\(error)")
        }
        if let early = Self.stopped(slot) { return early }
        // The runner plans within the bound the job will be held to (one reading of the machine's memory for both).
        let availability = memory()
        spec.memoryLimit = MemoryAdmission.bound(availability: availability, limit: settings.memoryLimit)?.bytes
        let estimate: MemoryEstimate
        do {
            estimate = try runner.estimateMemory(spec)
        } catch {
            logger.error("cannot estimate the memory of job \(id): \(error)")
            return .fail("cannot estimate its memory: \(error)")
        }
        let decision = MemoryAdmission.decide(job: "job \(id) (\(spec.modelName))", estimate: estimate,
                                              availability: availability, limit: settings.memoryLimit)
        if case .refuse(let reason) = decision {
            logger.warning("refused: \(reason)")
            return .refuse(reason)
        }
        return Self.stopped(slot) ?? .start(spec, estimate)
    }

    /// A stop asked for before the job started: a cancel ends it, a daemon stop leaves it queued.
    static func stopped(_ slot: JobSlot) -> Decision? {
        switch slot.stopReason {
        case nil: return nil
        case .cancelled(let reason): return .cancel(reason)
        case .daemonStopping: return .leaveQueued
        }
    }

    /// The job as its runner sees it: the model, its settings and its folders.
    static func spec(_ job: JobRecord, ledger: Ledger, settings: JobScheduler.Settings) throws -> JobSpec {
        let id = job.id!
        guard let model = try ledger.model(job.modelID) else { throw LedgerError.modelNotFound(job.modelID) }
        let decoded: JobSettings
        do {
            decoded = try job.decodedSettings(as: JobSettings.self)
        } catch {
            throw LedgerError.invalidValue(field: "jobs.settings", value: String(job.settings.prefix(120)),
                                           reason: "not settings this losad understands (\(error))")
        }
        let folders = JobFolders(outbox: settings.outbox, state: settings.state, model: model.name, job: id)
        return JobSpec(id: id, modelName: model.name, inputPath: job.inputPath, format: model.format,
                       contentHash: model.contentHash, settings: decoded, outputFolder: folders.staging,
                       publishedFolder: folders.published, checkpointFolder: folders.checkpoint,
                       resumeFrom: job.checkpointPath, attempt: job.attempts + 1,
                       threads: settings.threads > 0 ? settings.threads : nil)
    }
}
