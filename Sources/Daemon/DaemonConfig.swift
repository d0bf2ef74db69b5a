import Foundation

/// The daemon's configuration: folders, the settings a dropped model's job gets, scheduling,
/// inbox watching, the control socket and stopping. Read from TOML by
/// `DaemonConfig.load(path:)`; `Config/losad.toml` documents every key and holds the defaults.
public struct DaemonConfig: Sendable, Equatable {
    /// `[folders]`: where models arrive, where results go, where the ledger and checkpoints live.
    public struct Folders: Sendable, Equatable {
        public var inbox: String
        public var outbox: String
        /// Holds `losad.sqlite` and the job checkpoints.
        public var state: String

        public init(inbox: String, outbox: String, state: String) {
            self.inbox = inbox
            self.outbox = outbox
            self.state = state
        }
    }

    /// Which weights a pruning pass removes (LOSA.md step 4).
    public enum Method: String, Sendable, CaseIterable, Codable { case magnitude, wanda, sparsegpt }

    /// Where the zeros may fall: anywhere in a row, or N of every M consecutive inputs.
    public enum Pattern: String, Sendable, CaseIterable, Codable {
        case unstructured
        case twoOfFour = "2:4"
        case fourOfEight = "4:8"

        /// The sparsity the pattern fixes, if it fixes one.
        public var fixedSparsity: Double? {
            switch self {
            case .unstructured: return nil
            case .twoOfFour, .fourOfEight: return 0.5
            }
        }
    }

    /// How the target sparsity is spread over layers: by representation mutual information, or evenly.
    public enum Allocation: String, Sendable, CaseIterable, Codable { case rmi, uniform }

    /// What recovers quality after pruning: LoSA's sparse dynamic-rank LoRA, plain LoRA, or nothing.
    public enum Recovery: String, Sendable, CaseIterable, Codable { case losa, lora, none }

    /// The fine-tuning budget (LOSA.md step 7): minutes on a laptop, or the paper's sample counts.
    public enum Profile: String, Sendable, CaseIterable, Codable { case quick, standard, paper }

    /// The tensor type of the written model; `auto` keeps the input's type where it can be written.
    public enum ExportType: String, Sendable, CaseIterable, Codable {
        case q8_0, q4_0, f16, bf16, f32, auto
    }

    /// `[job]`: what a model dropped into the inbox is compressed with.
    public struct JobDefaults: Sendable, Equatable {
        /// Target average sparsity s, the fraction of projection weights that end up zero.
        public var sparsity: Double
        public var method: Method
        public var pattern: Pattern
        public var allocation: Allocation
        public var recovery: Recovery
        public var profile: Profile
        /// Text the model is calibrated and fine-tuned on; nil: the runner's built-in text.
        public var calibrationCorpus: String?
        /// Text perplexity is measured on; nil: the runner's built-in text.
        public var evaluationCorpus: String?
        public var exportType: ExportType
        /// Budgets that replace the profile's own (nil: the profile's value).
        public var budget: Budget

        public init(sparsity: Double, method: Method, pattern: Pattern, allocation: Allocation, recovery: Recovery,
                    profile: Profile, calibrationCorpus: String?, evaluationCorpus: String?, exportType: ExportType,
                    budget: Budget = Budget()) {
            self.sparsity = sparsity
            self.method = method
            self.pattern = pattern
            self.allocation = allocation
            self.recovery = recovery
            self.profile = profile
            self.calibrationCorpus = calibrationCorpus
            self.evaluationCorpus = evaluationCorpus
            self.exportType = exportType
            self.budget = budget
        }
    }

    /// How much work a job does, where the operator overrides the profile (each nil: the profile's value).
    public struct Budget: Sendable, Equatable, Codable {
        /// LoSA iterations T.
        public var iterations: Int?
        /// Calibration windows (pruning statistics, layer similarity, reconstruction errors).
        public var calibrationWindows: Int?
        /// Training windows over the whole job.
        public var trainingSamples: Int?
        /// Evaluation windows per text.
        public var evaluationWindows: Int?
        /// Window lengths in tokens.
        public var calibrationLength: Int?
        public var trainingLength: Int?
        public var evaluationLength: Int?

        public init(iterations: Int? = nil, calibrationWindows: Int? = nil, trainingSamples: Int? = nil,
                    evaluationWindows: Int? = nil, calibrationLength: Int? = nil, trainingLength: Int? = nil,
                    evaluationLength: Int? = nil) {
            self.iterations = iterations
            self.calibrationWindows = calibrationWindows
            self.trainingSamples = trainingSamples
            self.evaluationWindows = evaluationWindows
            self.calibrationLength = calibrationLength
            self.trainingLength = trainingLength
            self.evaluationLength = evaluationLength
        }

        enum CodingKeys: String, CodingKey {
            case iterations
            case calibrationWindows = "calibration_windows"
            case trainingSamples = "training_samples"
            case evaluationWindows = "evaluation_windows"
            case calibrationLength = "calibration_length"
            case trainingLength = "training_length"
            case evaluationLength = "evaluation_length"
        }
    }

    /// CPU scheduling class of the compute threads.
    public enum Priority: String, Sendable, CaseIterable, Codable {
        /// SCHED_IDLE: runs only when nothing else wants the CPU.
        case idle
        /// SCHED_BATCH at nice 19: a background job that still gets a share.
        case batch
        /// The scheduler's default class, at the daemon's own nice value.
        case normal
    }

    /// An upper bound on a job's estimated peak memory.
    public enum MemoryLimit: Sendable, Equatable {
        /// Only what the machine and the cgroup allow.
        case automatic
        case bytes(Int)
    }

    /// `[scheduler]`.
    public struct Scheduler: Sendable, Equatable {
        /// Jobs that run at the same time.
        public var runningJobs: Int
        /// Compute threads per job; 0 means one per CPU the process may use.
        public var threads: Int
        public var memoryLimit: MemoryLimit
        public var priority: Priority

        public init(runningJobs: Int, threads: Int, memoryLimit: MemoryLimit, priority: Priority) {
            self.runningJobs = runningJobs
            self.threads = threads
            self.memoryLimit = memoryLimit
            self.priority = priority
        }
    }

    /// `[watch]`.
    public struct Watch: Sendable, Equatable {
        /// Seconds a candidate's size and modification time must stay unchanged before it is taken.
        public var settleSeconds: Double
        /// Seconds between full rescans of the inbox (catches what inotify missed).
        public var rescanSeconds: Double

        public init(settleSeconds: Double, rescanSeconds: Double) {
            self.settleSeconds = settleSeconds
            self.rescanSeconds = rescanSeconds
        }
    }

    /// `[control]`: the varlink socket `losactl` connects to (when not socket-activated).
    public struct Control: Sendable, Equatable {
        public var socketPath: String
        /// Permission bits of the socket file, e.g. 0o660.
        public var socketMode: Int
        /// Group that owns the socket (and may change state); nil: the daemon's own group.
        public var socketGroup: String?

        public init(socketPath: String, socketMode: Int, socketGroup: String?) {
            self.socketPath = socketPath
            self.socketMode = socketMode
            self.socketGroup = socketGroup
        }
    }

    /// `[service]`.
    public struct Service: Sendable, Equatable {
        /// Seconds a stop may take: the running job checkpoints and the daemon exits within it.
        public var stopTimeoutSeconds: Double

        public init(stopTimeoutSeconds: Double) { self.stopTimeoutSeconds = stopTimeoutSeconds }
    }

    public var folders: Folders
    public var job: JobDefaults
    public var scheduler: Scheduler
    public var watch: Watch
    public var control: Control
    public var service: Service

    public init(folders: Folders, job: JobDefaults, scheduler: Scheduler, watch: Watch, control: Control, service: Service) {
        self.folders = folders
        self.job = job
        self.scheduler = scheduler
        self.watch = watch
        self.control = control
        self.service = service
    }

    /// The values a key takes when the file leaves it out (the same as `Config/losad.toml`).
    public static let defaults = DaemonConfig(
        folders: Folders(inbox: "/var/lib/losad/inbox", outbox: "/var/lib/losad/outbox", state: "/var/lib/losad"),
        job: JobDefaults(sparsity: 0.5, method: .wanda, pattern: .unstructured, allocation: .rmi, recovery: .losa,
                         profile: .standard, calibrationCorpus: nil, evaluationCorpus: nil, exportType: .auto),
        scheduler: Scheduler(runningJobs: 1, threads: 0, memoryLimit: .automatic, priority: .idle),
        watch: Watch(settleSeconds: 10, rescanSeconds: 60),
        control: Control(socketPath: "/run/losad/losad.sock", socketMode: 0o660, socketGroup: "losad"),
        service: Service(stopTimeoutSeconds: 60)
    )

    /// Keys whose new value only takes effect after a restart (a reload keeps the old one in use).
    public func keysNeedingRestart(comparedTo old: DaemonConfig) -> [String] {
        var keys: [String] = []
        if folders.state != old.folders.state { keys.append("folders.state") }
        if control.socketPath != old.control.socketPath { keys.append("control.socket") }
        if control.socketMode != old.control.socketMode { keys.append("control.socket_mode") }
        if control.socketGroup != old.control.socketGroup { keys.append("control.socket_group") }
        return keys
    }
}
