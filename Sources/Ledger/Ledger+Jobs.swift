import Foundation
import GRDB

// MARK: - Writes: every method is one transaction that checks the job's state before it moves it.

/// What `enqueue` did with a dropped model.
public enum EnqueueOutcome: Sendable, Equatable {
    /// A new job was queued.
    case enqueued(JobRecord)
    /// The same model (by content hash) with the same settings is already queued, running or done.
    case duplicate(JobRecord)

    /// The job either way.
    public var job: JobRecord {
        switch self {
        case .enqueued(let job), .duplicate(let job): return job
        }
    }
}

extension Ledger {
    /// Settings encoded as JSON with sorted keys, so that equal settings are equal text.
    public static func canonicalJSON<S: Encodable>(_ settings: S) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(settings), as: UTF8.self)
    }

    /// The model row with `model.contentHash`, inserting `model` if there is none yet.
    public func registerModel(_ model: ModelRecord) throws -> ModelRecord {
        try writer.write { db in try Ledger.registerModel(model, db) }
    }

    /// Registers the model and queues a job for it, unless a job for the same content hash and the
    /// same settings is already queued, running or succeeded (a failed, cancelled or refused one
    /// does not count: dropping the model again is how a user asks for another try).
    public func enqueue(model: ModelRecord, inputPath: String, settings: String) throws -> EnqueueOutcome {
        try Ledger.validateSettings(settings)
        return try writer.write { db in
            let stored = try Ledger.registerModel(model, db)
            let active: [JobRecord.State] = [.queued, .running, .succeeded]
            if let existing = try JobRecord
                .filter(JobRecord.Columns.modelID == stored.id!)
                .filter(JobRecord.Columns.settings == settings)
                .filter(active.contains(JobRecord.Columns.state))
                .order(JobRecord.Columns.id)
                .fetchOne(db) {
                return .duplicate(existing)
            }
            var job = JobRecord(modelID: stored.id!, inputPath: inputPath, settings: settings, createdAt: clock())
            try job.insert(db)
            try insertEvent(db, job.id!, .queued, stage: nil, message: "queued \(stored.name) from \(inputPath)")
            return .enqueued(job)
        }
    }

    /// `enqueue(model:inputPath:settings:)` with the settings encoded by `canonicalJSON`.
    public func enqueue<S: Encodable>(model: ModelRecord, inputPath: String, settings: S) throws -> EnqueueOutcome {
        try enqueue(model: model, inputPath: inputPath, settings: Ledger.canonicalJSON(settings))
    }

    /// queued → running; counts an attempt and clears the previous attempt's error.
    @discardableResult
    public func start(job id: Int64) throws -> JobRecord {
        try transition(id, "start", from: [.queued]) { db, job in
            job.state = .running
            job.attempts += 1
            job.startedAt = self.clock()
            job.finishedAt = nil
            job.error = nil
            let how = job.checkpointPath.map { "resuming from \($0)" } ?? "from the beginning"
            return (.started, "attempt \(job.attempts), \(how)")
        }
    }

    /// Records where a running job is; a change of stage is also written as an event.
    @discardableResult
    public func updateProgress(job id: Int64, stage: String, progress: Double, iteration: Int? = nil,
                               step: Int? = nil) throws -> JobRecord {
        guard progress.isFinite, (0...1).contains(progress) else {
            throw LedgerError.invalidValue(field: "progress", value: "\(progress)", reason: "a fraction in 0…1")
        }
        if let iteration, iteration < 1 {
            throw LedgerError.invalidValue(field: "iteration", value: "\(iteration)", reason: "LoSA iterations count from 1")
        }
        if let step, step < 0 {
            throw LedgerError.invalidValue(field: "step", value: "\(step)", reason: "steps count from 0")
        }
        return try writer.write { db in
            var job = try Ledger.fetchJob(db, id)
            try Ledger.require(job, in: [.running], "update the progress of")
            let stageChanged = job.stage != stage
            job.stage = stage
            job.progress = progress
            job.iteration = iteration
            job.step = step
            try job.update(db)
            if stageChanged { try insertEvent(db, id, .stage, stage: stage, message: "stage \(stage)") }
            return job
        }
    }

    /// Remembers the last LoSA checkpoint of a running job (written after each finished iteration).
    @discardableResult
    public func recordCheckpoint(job id: Int64, path: String, iteration: Int) throws -> JobRecord {
        try transition(id, "checkpoint", from: [.running]) { _, job in
            job.checkpointPath = path
            return (.checkpoint, "checkpoint after iteration \(iteration) at \(path)")
        }
    }

    /// running → succeeded, with everything the finished job produced, in one transaction: the output's path
    /// (already published), its report, its figures and its per-layer rows. Either all of it is recorded or
    /// none, so a crash leaves the job running (to be re-queued) or succeeded with its output.
    @discardableResult
    public func succeed(job id: Int64, outputPath: String, reportPath: String? = nil, metrics: [JobMetric] = [],
                        layerStatistics: [LayerStatistic] = []) throws -> JobRecord {
        try Ledger.check(layerStatistics)
        return try transition(id, "finish", from: [.running]) { db, job in
            job.state = .succeeded
            job.progress = 1
            job.finishedAt = self.clock()
            job.outputPath = outputPath
            try Ledger.replaceMetrics(metrics, job: id, db)
            try Ledger.replace(layerStatistics.filter { $0.jobID == id }, db)
            return (.succeeded, "wrote \(outputPath)" + (reportPath.map { "; report at \($0)" } ?? ""))
        }
    }

    /// queued | running → failed; `error` is the sentence a user reads.
    @discardableResult
    public func fail(job id: Int64, error: String) throws -> JobRecord {
        try transition(id, "fail", from: [.queued, .running]) { _, job in
            job.state = .failed
            job.finishedAt = self.clock()
            job.error = error
            return (.failed, error)
        }
    }

    /// queued | running → cancelled (for a running job: once its runner has stopped).
    @discardableResult
    public func cancel(job id: Int64, reason: String = "cancelled by request") throws -> JobRecord {
        try transition(id, "cancel", from: [.queued, .running]) { _, job in
            job.state = .cancelled
            job.finishedAt = self.clock()
            job.error = reason
            return (.cancelled, reason)
        }
    }

    /// queued → refused at admission, with the reason (e.g. the memory estimate against the limit).
    @discardableResult
    public func refuse(job id: Int64, reason: String) throws -> JobRecord {
        try transition(id, "refuse", from: [.queued]) { _, job in
            job.state = .refused
            job.finishedAt = self.clock()
            job.error = reason
            return (.refused, reason)
        }
    }

    /// failed | cancelled | refused → queued, at the back of the queue's order by id. The last
    /// checkpoint is kept, so a retried job resumes where it stopped; output and error are cleared.
    @discardableResult
    public func retry(job id: Int64) throws -> JobRecord {
        try transition(id, "retry", from: [.failed, .cancelled, .refused]) { _, job in
            let previous = job.state
            job.state = .queued
            job.finishedAt = nil
            job.error = nil
            job.outputPath = nil
            return (.retried, "retried after it was \(previous.rawValue)")
        }
    }

    /// running → queued: the job stopped without finishing (daemon stop or crash) and will resume
    /// from its checkpoint, or start over if it has none.
    @discardableResult
    public func interrupt(job id: Int64, reason: String) throws -> JobRecord {
        try transition(id, "interrupt", from: [.running]) { _, job in
            job.state = .queued
            return (.interrupted, Ledger.interruptionMessage(reason, job))
        }
    }

    /// Puts every job still marked running back in the queue — call once at start, before any job
    /// runs: a job that is "running" then was interrupted by a crash, `kill -9` or a stop.
    /// Returns the re-queued jobs in queue order.
    public func recoverInterruptedJobs(reason: String = "the daemon stopped while it ran") throws -> [JobRecord] {
        try writer.write { db in
            var jobs = try JobRecord.filter(JobRecord.Columns.state == JobRecord.State.running.rawValue)
                .order(JobRecord.Columns.id).fetchAll(db)
            for index in jobs.indices {
                jobs[index].state = .queued
                try jobs[index].update(db)
                try insertEvent(db, jobs[index].id!, .interrupted, stage: jobs[index].stage,
                                message: Ledger.interruptionMessage(reason, jobs[index]))
            }
            return jobs
        }
    }

    /// A free-form line in a job's history (warnings, measured figures worth reading).
    public func note(job id: Int64, message: String, stage: String? = nil) throws {
        try writer.write { db in
            _ = try Ledger.fetchJob(db, id)
            try insertEvent(db, id, .note, stage: stage, message: message)
        }
    }

    /// Records per-layer figures of a running job; a row for the same iteration and layer is replaced
    /// (a resumed job repeats the iteration it was in).
    public func recordLayerStatistics(_ statistics: [LayerStatistic]) throws {
        try Ledger.check(statistics)
        try writer.write { db in
            for jobID in Set(statistics.map(\.jobID)) {
                try Ledger.require(try Ledger.fetchJob(db, jobID), in: [.running], "record layer statistics for")
            }
            try Ledger.replace(statistics, db)
        }
    }

    /// Records figures of a running job; a metric of the same name is replaced.
    public func recordMetrics(_ metrics: [JobMetric]) throws {
        try writer.write { db in
            for jobID in Set(metrics.map(\.jobID)) {
                try Ledger.require(try Ledger.fetchJob(db, jobID), in: [.running], "record metrics for")
                try Ledger.replaceMetrics(metrics.filter { $0.jobID == jobID }, job: jobID, db)
            }
        }
    }

    // MARK: - Helpers

    /// Loads the job, checks its state, lets `change` edit it, saves it and writes the event `change` names.
    func transition(_ id: Int64, _ operation: String, from allowed: [JobRecord.State],
                    _ change: (Database, inout JobRecord) throws -> (JobEventRecord.Kind, String)) throws -> JobRecord {
        try writer.write { db in
            var job = try Ledger.fetchJob(db, id)
            try Ledger.require(job, in: allowed, operation)
            let (kind, message) = try change(db, &job)
            try job.update(db)
            try insertEvent(db, id, kind, stage: job.stage, message: message)
            return job
        }
    }

    func insertEvent(_ db: Database, _ jobID: Int64, _ kind: JobEventRecord.Kind, stage: String?, message: String) throws {
        var event = JobEventRecord(jobID: jobID, time: clock(), kind: kind, stage: stage, message: message)
        try event.insert(db)
    }

    static func fetchJob(_ db: Database, _ id: Int64) throws -> JobRecord {
        guard let job = try JobRecord.fetchOne(db, key: id) else { throw LedgerError.jobNotFound(id) }
        return job
    }

    static func require(_ job: JobRecord, in allowed: [JobRecord.State], _ operation: String) throws {
        guard allowed.contains(job.state) else {
            throw LedgerError.invalidTransition(job: job.id!, operation: operation, from: job.state, allowed: allowed)
        }
    }

    static func registerModel(_ model: ModelRecord, _ db: Database) throws -> ModelRecord {
        if let existing = try ModelRecord.filter(ModelRecord.Columns.contentHash == model.contentHash).fetchOne(db) {
            return existing
        }
        guard model.contentHash.count == 64, model.contentHash.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw LedgerError.invalidValue(field: "models.content_hash", value: model.contentHash,
                                           reason: "a SHA-256 as 64 lowercase hex digits")
        }
        var stored = model
        stored.id = nil
        try stored.insert(db)
        return stored
    }

    static func validateSettings(_ settings: String) throws {
        guard (try? JSONSerialization.jsonObject(with: Data(settings.utf8))) is [String: Any] else {
            throw LedgerError.invalidValue(field: "jobs.settings", value: String(settings.prefix(80)), reason: "a JSON object")
        }
    }

    static func check(_ statistics: [LayerStatistic]) throws {
        for s in statistics {
            guard s.iteration >= 1, s.layer >= 0, s.rank >= 0 else {
                throw LedgerError.invalidValue(field: "layer_statistics", value: "iteration \(s.iteration), layer \(s.layer), rank \(s.rank)",
                                               reason: "iterations count from 1, layers and ranks from 0")
            }
            guard s.sparsity.isFinite, (0...1).contains(s.sparsity) else {
                throw LedgerError.invalidValue(field: "layer_statistics.sparsity", value: "\(s.sparsity)", reason: "a fraction in 0…1")
            }
        }
    }

    static func replace(_ statistics: [LayerStatistic], _ db: Database) throws {
        for var s in statistics {
            try LayerStatistic.filter(LayerStatistic.Columns.jobID == s.jobID)
                .filter(LayerStatistic.Columns.iteration == s.iteration)
                .filter(LayerStatistic.Columns.layer == s.layer).deleteAll(db)
            s.id = nil
            try s.insert(db)
        }
    }

    static func replaceMetrics(_ metrics: [JobMetric], job id: Int64, _ db: Database) throws {
        for var metric in metrics {
            guard metric.jobID == id else {
                throw LedgerError.invalidValue(field: "metrics.job_id", value: "\(metric.jobID)", reason: "metric given for job \(id)")
            }
            try JobMetric.filter(JobMetric.Columns.jobID == id).filter(JobMetric.Columns.name == metric.name).deleteAll(db)
            metric.id = nil
            try metric.insert(db)
        }
    }

    static func interruptionMessage(_ reason: String, _ job: JobRecord) -> String {
        if let checkpoint = job.checkpointPath { return "\(reason); resumes from \(checkpoint)" }
        return "\(reason); no checkpoint, starts over"
    }
}
