import Compression
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

        /// "auto", or a size with a binary unit like systemd's ("512M", "6G", "6GiB") or bytes, of at least 64 MiB:
        /// what `scheduler.memory_limit` and `losad compress --memory-limit` accept. Nil for anything else.
        public init?(parsing text: String) {
            if text == "auto" { self = .automatic; return }
            guard let bytes = SectionReader.parseSize(text), bytes >= 64 << 20 else { return nil }
            self = .bytes(bytes)
        }
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
    /// `[job]`: what a model dropped into the inbox is compressed with (a `submit` may change it per job).
    public var job: JobSettings
    public var scheduler: Scheduler
    public var watch: Watch
    public var control: Control
    public var service: Service

    public init(folders: Folders, job: JobSettings, scheduler: Scheduler, watch: Watch, control: Control, service: Service) {
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
        job: JobSettings.defaults,
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
