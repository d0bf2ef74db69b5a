import Foundation
import GRDB

/// One compression job (table `jobs`): its state, where it is, what it was asked to do and what came of it.
public struct JobRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "jobs"

    public var id: Int64?
    public var modelID: Int64
    /// The file or folder this job reads (a model may be dropped at several paths).
    public var inputPath: String
    public var state: JobRecord.State
    /// The pipeline stage while running (e.g. "calibrate", "losa", "export"); the last one reached after.
    public var stage: String?
    /// Fraction of the whole job done, 0…1.
    public var progress: Double
    /// LoSA iteration (1…T) the job is in, when it is in the loop.
    public var iteration: Int?
    /// Training step inside the iteration.
    public var step: Int?
    /// The job's settings as canonical JSON (sorted keys), so equal settings compare equal as text.
    public var settings: String
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Why the job failed, was cancelled or was refused.
    public var error: String?
    public var outputPath: String?
    /// The last LoSA checkpoint written; a resumed job starts from it.
    public var checkpointPath: String?
    /// How many times the job has been started (a resume after a crash counts again).
    public var attempts: Int

    public init(id: Int64? = nil, modelID: Int64, inputPath: String, state: JobRecord.State = .queued, stage: String? = nil,
                progress: Double = 0, iteration: Int? = nil, step: Int? = nil, settings: String,
                createdAt: Date, startedAt: Date? = nil, finishedAt: Date? = nil, error: String? = nil,
                outputPath: String? = nil, checkpointPath: String? = nil, attempts: Int = 0) {
        self.id = id
        self.modelID = modelID
        self.inputPath = inputPath
        self.state = state
        self.stage = stage
        self.progress = progress
        self.iteration = iteration
        self.step = step
        self.settings = settings
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.error = error
        self.outputPath = outputPath
        self.checkpointPath = checkpointPath
        self.attempts = attempts
    }

    enum CodingKeys: String, CodingKey {
        case id
        case modelID = "model_id"
        case inputPath = "input_path"
        case state, stage, progress, iteration, step, settings
        case createdAt = "created_at"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case error
        case outputPath = "output_path"
        case checkpointPath = "checkpoint_path"
        case attempts
    }

    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let modelID = Column(CodingKeys.modelID)
        public static let state = Column(CodingKeys.state)
        public static let settings = Column(CodingKeys.settings)
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    /// The settings decoded as `type`.
    public func decodedSettings<S: Decodable>(as type: S.Type) throws -> S {
        try JSONDecoder().decode(S.self, from: Data(settings.utf8))
    }
}
