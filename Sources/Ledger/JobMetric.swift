import GRDB

/// One named figure of a job (table `metrics`), e.g. "perplexity.losa" = 17.2 "", "sparsity" = 0.5 "fraction".
public struct JobMetric: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "metrics"

    public var id: Int64?
    public var jobID: Int64
    public var name: String
    public var value: Double
    public var unit: String

    public init(id: Int64? = nil, jobID: Int64, name: String, value: Double, unit: String) {
        self.id = id
        self.jobID = jobID
        self.name = name
        self.value = value
        self.unit = unit
    }

    enum CodingKeys: String, CodingKey {
        case id
        case jobID = "job_id"
        case name, value, unit
    }

    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let jobID = Column(CodingKeys.jobID)
        public static let name = Column(CodingKeys.name)
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}
