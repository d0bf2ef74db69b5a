import Foundation
import GRDB

/// One line of a job's history (table `job_events`).
public struct JobEventRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "job_events"

    /// What happened.
    public enum Kind: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
        case queued, started, stage, checkpoint, interrupted, succeeded, failed, cancelled, refused, retried, note
    }

    public var id: Int64?
    public var jobID: Int64
    public var time: Date
    public var kind: Kind
    public var stage: String?
    public var message: String

    public init(id: Int64? = nil, jobID: Int64, time: Date, kind: Kind, stage: String? = nil, message: String) {
        self.id = id
        self.jobID = jobID
        self.time = time
        self.kind = kind
        self.stage = stage
        self.message = message
    }

    enum CodingKeys: String, CodingKey {
        case id
        case jobID = "job_id"
        case time, kind, stage, message
    }

    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let jobID = Column(CodingKeys.jobID)
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}
