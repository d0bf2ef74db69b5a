import GRDB

/// What one LoSA iteration decided for one layer (table `layer_statistics`, one row per job, iteration, layer).
public struct LayerStatistic: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "layer_statistics"

    public var id: Int64?
    public var jobID: Int64
    /// LoSA iteration, 1…T.
    public var iteration: Int
    /// Decoder layer, 0…L−1.
    public var layer: Int
    /// The layer's sparsity x_l this iteration (fraction of zero weights).
    public var sparsity: Double
    /// The layer's adapter rank r_l this iteration.
    public var rank: Int
    /// RMI importance exp(−β·u_l).
    public var importance: Double
    /// Reconstruction error e_l of the pruned layer against the dense features.
    public var reconstructionError: Double

    public init(id: Int64? = nil, jobID: Int64, iteration: Int, layer: Int, sparsity: Double, rank: Int,
                importance: Double, reconstructionError: Double) {
        self.id = id
        self.jobID = jobID
        self.iteration = iteration
        self.layer = layer
        self.sparsity = sparsity
        self.rank = rank
        self.importance = importance
        self.reconstructionError = reconstructionError
    }

    enum CodingKeys: String, CodingKey {
        case id
        case jobID = "job_id"
        case iteration, layer, sparsity, rank, importance
        case reconstructionError = "reconstruction_error"
    }

    public enum Columns {
        public static let jobID = Column(CodingKeys.jobID)
        public static let iteration = Column(CodingKeys.iteration)
        public static let layer = Column(CodingKeys.layer)
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}
