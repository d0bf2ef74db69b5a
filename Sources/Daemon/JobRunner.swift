import Compression

/// What runs one compression job for the scheduler: the seam between the daemon and the engine.
///
/// The scheduler calls `estimateMemory` before a job starts (admission) and then `run` on the job's
/// own OS thread, already lowered to the configured CPU class. `run` blocks until the job is done.
/// It must ask `context.shouldStop` between steps (often enough that a cancel or a daemon stop takes
/// effect within a few seconds) and then throw — any error will do; the scheduler knows why it
/// asked and records the job as cancelled or interrupted, not failed. A job the daemon stopped is
/// started again later with the same `JobSpec.checkpointFolder`, and the runner resumes from what
/// it left there.
public protocol JobRunner: Sendable {
    /// The job's peak memory, as `MemoryAdmission` compares it with what the machine allows.
    /// - Throws: a readable error when the input cannot be read; the job then fails with it.
    func estimateMemory(_ job: JobSpec) throws -> MemoryEstimate

    /// Runs the job to the end and says what it produced. Files go into `job.outputFolder`
    /// (the scheduler publishes the folder under its final name once `run` returns).
    func run(_ job: JobSpec, context: JobContext) throws -> JobOutcome
}

/// Everything a runner needs to know about one job.
public struct JobSpec: Sendable, Equatable {
    /// The ledger's job id.
    public var id: Int64
    /// The model's short name (file or folder name without extension).
    public var modelName: String
    /// The `.gguf` file or Hugging Face folder to read; never modified.
    public var inputPath: String
    /// "gguf" or "huggingface".
    public var format: String
    /// SHA-256 of the input (`ContentHash`), lowercase hex.
    public var contentHash: String
    public var settings: JobSettings
    /// An empty folder the outputs go into (the compressed model and `report.json`). It is hidden
    /// in the outbox while the job runs and renamed to `JobSpec.publishedFolder` when it succeeds.
    public var outputFolder: String
    /// Where `outputFolder` ends up once the job succeeds (`outbox/<model name>-<job id>`), for
    /// reports that mention their own location.
    public var publishedFolder: String
    /// The job's own folder under the state folder for LoSA checkpoints; it survives a stop or a
    /// crash, and whatever the runner left in it is there when the job starts again.
    public var checkpointFolder: String
    /// The last checkpoint the runner announced through `JobContext.checkpointWritten`, if any.
    public var resumeFrom: String?
    /// How many times the job has been started, this start included.
    public var attempt: Int
    /// Compute threads the job may use; nil: one per CPU the daemon may use.
    public var threads: Int?
    /// Bytes the job may use at its peak (`MemoryAdmission.bound`), set by admission before it asks for the
    /// estimate: the runner plans within it (e.g. recomputing training activations rather than storing them).
    public var memoryLimit: Int?

    public init(id: Int64, modelName: String, inputPath: String, format: String, contentHash: String,
                settings: JobSettings, outputFolder: String, publishedFolder: String, checkpointFolder: String, resumeFrom: String?,
                attempt: Int, threads: Int?) {
        self.id = id
        self.modelName = modelName
        self.inputPath = inputPath
        self.format = format
        self.contentHash = contentHash
        self.settings = settings
        self.outputFolder = outputFolder
        self.publishedFolder = publishedFolder
        self.checkpointFolder = checkpointFolder
        self.resumeFrom = resumeFrom
        self.attempt = attempt
        self.threads = threads
    }
}

/// What a finished job produced.
public struct JobOutcome: Sendable, Equatable {
    /// One figure of the job, e.g. ("perplexity.losa", 17.2, ""), ("sparsity", 0.5, "fraction").
    public struct Metric: Sendable, Equatable {
        public var name: String
        public var value: Double
        public var unit: String

        public init(name: String, value: Double, unit: String = "") {
            self.name = name
            self.value = value
            self.unit = unit
        }
    }

    /// What one LoSA iteration decided for one layer (LOSA.md: x_l, r_l, importance, e_l).
    public struct LayerRow: Sendable, Equatable {
        public var iteration: Int
        public var layer: Int
        public var sparsity: Double
        public var rank: Int
        public var importance: Double
        public var reconstructionError: Double

        public init(iteration: Int, layer: Int, sparsity: Double, rank: Int, importance: Double, reconstructionError: Double) {
            self.iteration = iteration
            self.layer = layer
            self.sparsity = sparsity
            self.rank = rank
            self.importance = importance
            self.reconstructionError = reconstructionError
        }
    }

    /// The compressed model (a file or a folder) inside `JobSpec.outputFolder`.
    public var outputPath: String
    /// The job's report inside `JobSpec.outputFolder`, if it wrote one.
    public var reportPath: String?
    public var metrics: [Metric]
    /// Rows not already given through `JobContext.record(layerStatistics:)`; a repeated
    /// (iteration, layer) replaces the earlier row.
    public var layerStatistics: [LayerRow]

    public init(outputPath: String, reportPath: String? = nil, metrics: [Metric] = [], layerStatistics: [LayerRow] = []) {
        self.outputPath = outputPath
        self.reportPath = reportPath
        self.metrics = metrics
        self.layerStatistics = layerStatistics
    }
}
