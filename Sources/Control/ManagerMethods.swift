/// Parameters and replies of the methods of `io.losa.Manager`
/// (io.losa.Manager.varlink), field for field.

/// The parameters or reply of a method that has none.
public struct NoParameters: Codable, Sendable, Equatable {
    public init() {}
}

/// Reply of `Status`.
public struct StatusReply: Codable, Sendable, Equatable {
    public var state: DaemonState
    public var version: String
    /// Jobs waiting to start.
    public var queued: Int
    public var running: [Job]
    /// The CPU that compresses, with the threads it uses.
    public var device: String
    /// The OpenBLAS kernel in use, like Haswell.
    public var kernel: String
    public var inbox: String
    public var outbox: String
    public var uptimeSeconds: Double

    public init(state: DaemonState, version: String, queued: Int, running: [Job], device: String, kernel: String,
                inbox: String, outbox: String, uptimeSeconds: Double) {
        self.state = state
        self.version = version
        self.queued = queued
        self.running = running
        self.device = device
        self.kernel = kernel
        self.inbox = inbox
        self.outbox = outbox
        self.uptimeSeconds = uptimeSeconds
    }
}

/// Parameters of `ListJobs`.
public struct ListJobsParameters: Codable, Sendable, Equatable {
    /// Only jobs in this state.
    public var state: JobState?
    /// At most this many (newest first); nil: `defaultLimit`.
    public var limit: Int?

    public static let defaultLimit = 50

    public init(state: JobState? = nil, limit: Int? = nil) {
        self.state = state
        self.limit = limit
    }
}

/// Reply of `ListJobs`.
public struct ListJobsReply: Codable, Sendable, Equatable {
    public var jobs: [Job]
    public init(jobs: [Job]) { self.jobs = jobs }
}

/// Parameters of `GetJob`, `Cancel` and `Retry`.
public struct JobIDParameters: Codable, Sendable, Equatable {
    public var id: Int
    public init(id: Int) { self.id = id }
}

/// Reply of `GetJob`.
public struct GetJobReply: Codable, Sendable, Equatable {
    public var job: Job
    public var iterations: [IterationFigures]
    public var figures: JobFigures
    public var events: [JobEvent]

    public init(job: Job, iterations: [IterationFigures] = [], figures: JobFigures = JobFigures(), events: [JobEvent] = []) {
        self.job = job
        self.iterations = iterations
        self.figures = figures
        self.events = events
    }
}

/// Parameters of `Submit`: an absolute path outside the inbox, and the
/// settings that differ from the configured defaults.
public struct SubmitParameters: Codable, Sendable, Equatable {
    public var path: String
    public var sparsity: Double?
    public var method: String?
    public var pattern: String?
    public var allocation: String?
    public var recovery: String?
    public var profile: String?
    public var calibration: String?
    public var evaluation: String?
    /// The files the job writes: "gguf", "sparse" or both.
    public var outputs: [String]?
    /// The training objective ("ce", "ce+kd", …), the distillation temperature and the hidden-state term's weight.
    public var objective: String?
    public var kdTemperature: Double?
    public var hiddenLossWeight: Double?
    /// "none" or "least-squares": whether the weights a Wanda or magnitude mask keeps are refitted.
    public var weightReconstruction: String?

    enum CodingKeys: String, CodingKey {
        case path, sparsity, method, pattern, allocation, recovery, profile, calibration, evaluation, outputs, objective
        case kdTemperature = "kd_temperature"
        case hiddenLossWeight = "hidden_loss_weight"
        case weightReconstruction = "weight_reconstruction"
    }

    public init(path: String, sparsity: Double? = nil, method: String? = nil, pattern: String? = nil,
                allocation: String? = nil, recovery: String? = nil, profile: String? = nil,
                calibration: String? = nil, evaluation: String? = nil, outputs: [String]? = nil,
                objective: String? = nil, kdTemperature: Double? = nil, hiddenLossWeight: Double? = nil,
                weightReconstruction: String? = nil) {
        self.objective = objective
        self.kdTemperature = kdTemperature
        self.hiddenLossWeight = hiddenLossWeight
        self.weightReconstruction = weightReconstruction
        self.path = path
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

/// Reply of `Submit`, `Cancel` and `Retry`: the job as it is after the call.
public struct JobReply: Codable, Sendable, Equatable {
    public var job: Job
    public init(job: Job) { self.job = job }
}

/// Reply of `Pause` and `Resume`.
public struct QueueReply: Codable, Sendable, Equatable {
    public var state: DaemonState
    public init(state: DaemonState) { self.state = state }
}

/// Parameters of `Watch`.
public struct WatchParameters: Codable, Sendable, Equatable {
    /// The job to follow; nil: the one running now, or else the next to start.
    public var id: Int?
    public init(id: Int? = nil) { self.id = id }
}

/// One reply of `Watch`: the job as it is now and the event that changed it
/// (none in the first reply). The reply whose job is in a final state is the last.
public struct WatchReply: Codable, Sendable, Equatable {
    public var job: Job
    public var event: JobEvent?
    public init(job: Job, event: JobEvent? = nil) {
        self.job = job
        self.event = event
    }
}

/// Reply of `Metrics`.
public struct MetricsReply: Codable, Sendable, Equatable {
    public var metrics: [Metric]
    public init(metrics: [Metric]) { self.metrics = metrics }
}
