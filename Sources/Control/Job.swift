/// The job types of `io.losa.Manager` (io.losa.Manager.varlink): plain
/// Codable values whose field names are the interface's.

/// Where a job is in its life: queued, then running, then one of the final states.
public enum JobState: String, Codable, Sendable, CaseIterable {
    case queued, running, succeeded, failed, cancelled

    /// Whether the job has ended (nothing more will happen to it unless retried).
    public var isFinal: Bool {
        switch self {
        case .queued, .running: return false
        case .succeeded, .failed, .cancelled: return true
        }
    }
}

/// What the daemon is doing: idle, running jobs, paused (the queue is held),
/// or stopping.
public enum DaemonState: String, Codable, Sendable, CaseIterable {
    case idle, running, paused, stopping
}

/// How a job compresses its model (see LOSA.md), as the interface's
/// `JobSettings` carries it: the daemon's words (`wanda`, `2:4`, `quick`…),
/// which the daemon validates.
public struct SubmittedSettings: Codable, Sendable, Equatable {
    /// Target average sparsity, in (0, 1).
    public var sparsity: Double
    /// Pruning score: magnitude, wanda or sparsegpt.
    public var method: String
    /// unstructured, 2:4 or 4:8.
    public var pattern: String
    /// Layer-wise sparsity: rmi or uniform.
    public var allocation: String
    /// losa, lora or none.
    public var recovery: String
    /// quick, standard or paper.
    public var profile: String
    /// Calibration/training text file; nil: the built-in corpus.
    public var calibration: String?
    /// Evaluation text file; nil: the built-in corpus.
    public var evaluation: String?
    /// The files the job writes ("gguf", "sparse"); nil from a daemon that does not say.
    public var outputs: [String]?

    public init(sparsity: Double, method: String, pattern: String, allocation: String, recovery: String,
                profile: String, calibration: String? = nil, evaluation: String? = nil, outputs: [String]? = nil) {
        self.sparsity = sparsity
        self.method = method
        self.pattern = pattern
        self.allocation = allocation
        self.recovery = recovery
        self.profile = profile
        self.calibration = calibration
        self.evaluation = evaluation
        self.outputs = outputs
    }
}

/// How far a running job is: its stage, LoSA iteration and training step.
public struct JobProgress: Codable, Sendable, Equatable {
    /// ingest, load, calibrate, prune, train, merge, evaluate or export.
    public var stage: String
    /// Fraction of the whole job done, 0…1.
    public var fraction: Double
    public var iteration: Int?
    public var iterations: Int?
    public var step: Int?
    public var steps: Int?
    /// Training loss of the latest step.
    public var loss: Double?
    /// Estimated seconds until the job ends.
    public var etaSeconds: Double?

    public init(stage: String, fraction: Double, iteration: Int? = nil, iterations: Int? = nil, step: Int? = nil,
                steps: Int? = nil, loss: Double? = nil, etaSeconds: Double? = nil) {
        self.stage = stage
        self.fraction = fraction
        self.iteration = iteration
        self.iterations = iterations
        self.step = step
        self.steps = steps
        self.loss = loss
        self.etaSeconds = etaSeconds
    }
}

/// One job as the queue shows it. Times are RFC 3339 strings in UTC.
public struct Job: Codable, Sendable, Equatable {
    public var id: Int
    /// The model's file or folder name.
    public var model: String
    /// Where the model was read from.
    public var input: String
    public var state: JobState
    public var settings: SubmittedSettings
    /// Present while the job runs.
    public var progress: JobProgress?
    public var submittedAt: String
    public var startedAt: String?
    public var finishedAt: String?
    /// Where the compressed model was written, once the job succeeded.
    public var output: String?
    /// Why the job failed.
    public var error: String?

    public init(id: Int, model: String, input: String, state: JobState, settings: SubmittedSettings,
                progress: JobProgress? = nil, submittedAt: String, startedAt: String? = nil,
                finishedAt: String? = nil, output: String? = nil, error: String? = nil) {
        self.id = id
        self.model = model
        self.input = input
        self.state = state
        self.settings = settings
        self.progress = progress
        self.submittedAt = submittedAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.output = output
        self.error = error
    }
}

/// Something that happened to a job.
public struct JobEvent: Codable, Sendable, Equatable {
    /// RFC 3339, UTC.
    public var time: String
    /// queued, started, stage, iteration, progress, succeeded, failed, cancelled, retried or message.
    public var kind: String
    public var message: String
    public var state: JobState?
    public var progress: JobProgress?

    public init(time: String, kind: String, message: String, state: JobState? = nil, progress: JobProgress? = nil) {
        self.time = time
        self.kind = kind
        self.message = message
        self.state = state
        self.progress = progress
    }
}
