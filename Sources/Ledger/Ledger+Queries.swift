import GRDB

/// A job with everything recorded about it, for `losactl show`.
public struct JobDetails: Sendable, Equatable {
    public var job: JobRecord
    public var model: ModelRecord
    /// Oldest first.
    public var events: [JobEventRecord]
    /// By iteration, then layer.
    public var layerStatistics: [LayerStatistic]
    /// By name.
    public var metrics: [JobMetric]
}

// MARK: - Reads

extension Ledger {
    public func job(_ id: Int64) throws -> JobRecord? {
        try writer.read { db in try JobRecord.fetchOne(db, key: id) }
    }

    public func model(_ id: Int64) throws -> ModelRecord? {
        try writer.read { db in try ModelRecord.fetchOne(db, key: id) }
    }

    public func model(contentHash: String) throws -> ModelRecord? {
        try writer.read { db in try ModelRecord.filter(ModelRecord.Columns.contentHash == contentHash).fetchOne(db) }
    }

    /// Queued jobs in the order they will run (first in, first out).
    public func queuedJobs() throws -> [JobRecord] {
        try writer.read { db in
            try JobRecord.filter(JobRecord.Columns.state == JobRecord.State.queued.rawValue).order(JobRecord.Columns.id).fetchAll(db)
        }
    }

    /// The job that runs next, if any.
    public func nextQueuedJob() throws -> JobRecord? {
        try writer.read { db in
            try JobRecord.filter(JobRecord.Columns.state == JobRecord.State.queued.rawValue).order(JobRecord.Columns.id).fetchOne(db)
        }
    }

    /// Jobs marked running. At start, before anything runs, these are the interrupted ones.
    public func runningJobs() throws -> [JobRecord] {
        try writer.read { db in
            try JobRecord.filter(JobRecord.Columns.state == JobRecord.State.running.rawValue).order(JobRecord.Columns.id).fetchAll(db)
        }
    }

    /// Jobs newest first, optionally only those in `states`, at most `limit`.
    public func jobs(in states: Set<JobRecord.State>? = nil, limit: Int? = nil) throws -> [JobRecord] {
        try writer.read { db in
            var request = JobRecord.order(JobRecord.Columns.id.desc)
            if let states { request = request.filter(states.map(\.rawValue).contains(JobRecord.Columns.state)) }
            if let limit { request = request.limit(max(0, limit)) }
            return try request.fetchAll(db)
        }
    }

    /// The job with its model, events, per-layer statistics and metrics, read in one snapshot.
    public func details(job id: Int64) throws -> JobDetails? {
        try writer.read { db in
            guard let job = try JobRecord.fetchOne(db, key: id) else { return nil }
            guard let model = try ModelRecord.fetchOne(db, key: job.modelID) else { throw LedgerError.modelNotFound(job.modelID) }
            let events = try JobEventRecord.filter(JobEventRecord.Columns.jobID == id).order(JobEventRecord.Columns.id).fetchAll(db)
            let statistics = try LayerStatistic.filter(LayerStatistic.Columns.jobID == id)
                .order(LayerStatistic.Columns.iteration, LayerStatistic.Columns.layer).fetchAll(db)
            let metrics = try JobMetric.filter(JobMetric.Columns.jobID == id).order(JobMetric.Columns.name).fetchAll(db)
            return JobDetails(job: job, model: model, events: events, layerStatistics: statistics, metrics: metrics)
        }
    }

    /// How many jobs are in each state (states with none are absent).
    public func jobCounts() throws -> [JobRecord.State: Int] {
        try writer.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            var counts: [JobRecord.State: Int] = [:]
            for row in rows {
                if let state = JobRecord.State(rawValue: row["state"]) { counts[state] = row["n"] }
            }
            return counts
        }
    }
}

extension Ledger {
    /// Every job of the model `modelID`, oldest first.
    public func jobs(forModel modelID: Int64) throws -> [JobRecord] {
        try writer.read { db in
            try JobRecord.filter(JobRecord.Columns.modelID == modelID).order(JobRecord.Columns.id).fetchAll(db)
        }
    }
}
