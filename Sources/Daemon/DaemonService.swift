#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Ledger
import Logging
import Synchronization

/// The whole daemon (`losad run`): configuration, folders, ledger, crash recovery, the control
/// endpoint, inbox watching, the job scheduler and the systemd protocol, from start to a clean stop.
///
/// Start order: read the configuration → create the inbox, outbox and state folders → open the
/// ledger → re-queue jobs a crash left running and start queued jobs → start the control endpoint
/// → READY=1 → watchdog pings → watch the inbox. SIGHUP (or `Manager.reload`) sends RELOADING=1,
/// re-reads the file — an invalid one is refused and the running configuration stays — and READY=1.
/// SIGTERM or SIGINT sends STOPPING=1, stops watching, asks running jobs to stop at their next step,
/// marks them interrupted (queued again, to resume from their checkpoint) and returns within 80% of
/// `service.stop_timeout_seconds`. A second SIGINT exits at once (jobs resume at the next start).
public final class DaemonService: Sendable {
    public struct Options: Sendable {
        public var configPath: String
        /// Reported by `Manager.status`.
        public var version: String
        /// Where NOTIFY_SOCKET, WATCHDOG_USEC/PID and LISTEN_FDS are read from.
        public var environment: [String: String]
        /// Whether SIGTERM, SIGINT and SIGHUP are handled (the executable); in-process tests call
        /// `requestStop` and `reload` instead.
        public var handleSignals: Bool
        /// What the machine and cgroup allow now (admission); tests pass fixed figures.
        public var memory: @Sendable () -> MemoryAvailability

        public init(configPath: String, version: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                    handleSignals: Bool = true, memory: @escaping @Sendable () -> MemoryAvailability = { MemoryAvailability.read() }) {
            self.configPath = configPath
            self.version = version
            self.environment = environment
            self.handleSignals = handleSignals
            self.memory = memory
        }
    }

    public let options: Options
    private let runner: any JobRunner
    private let control: (any ControlEndpoint)?
    let logger: Logger
    private let state = Mutex(State())
    private let stopRequested = DispatchSemaphore(value: 0)
    let stopOnce = Atomic<Bool>(false)
    private let reloadLock = NSLock()

    struct State {
        var config: DaemonConfig?
        var manager: Manager?
        var notifier: SystemdNotifier?
        var ready = false
        var lastStatus: String?
        var inbox: InboxFeed?
        var stopReason: String?
        var stopRequestedAt: Double?
    }

    /// - Parameters:
    ///   - runner: runs the jobs (the compression engine in `losad`; a fake in tests).
    ///   - control: the control server, or nil to run without one.
    public init(options: Options, runner: any JobRunner, control: (any ControlEndpoint)? = nil,
                logger: Logger = Logger(label: "losad")) {
        self.options = options
        self.runner = runner
        self.control = control
        self.logger = logger
    }

    /// The daemon's API once it is ready (nil before).
    public var manager: Manager? { state.withLock { $0.manager } }

    /// The configuration in force (nil before it was read).
    public var configuration: DaemonConfig? { state.withLock { $0.config } }

    /// Waits until the daemon is ready, or `timeout` seconds; returns its manager if it is.
    public func waitUntilReady(timeout: Double) -> Manager? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let manager = state.withLock({ $0.ready ? $0.manager : nil }) { return manager }
            if Date() >= deadline { return nil }
            usleep(5_000)
        }
    }

    /// Asks the daemon to stop (what SIGTERM does). Returns at once; `run()` returns when it has stopped.
    public func requestStop(reason: String = "stop requested") {
        guard !stopOnce.exchange(true, ordering: .acquiringAndReleasing) else { return }
        state.withLock {
            $0.stopReason = reason
            $0.stopRequestedAt = MonotonicClock.seconds()
        }
        stopRequested.signal()
    }

    // MARK: - Running

    /// Starts the daemon and blocks until it has stopped after `requestStop` (or a signal).
    /// - Throws: `ConfigError`, `DaemonError` or `LedgerError` when it cannot start; nothing is left running then.
    public func run() throws {
        let signalSources = options.handleSignals ? installSignalHandlers() : []
        defer { signalSources.forEach { $0.cancel() } }

        let config = try DaemonConfig.load(path: options.configPath)
        try DaemonService.createFolders(config)
        let ledgerPath = config.folders.state + "/" + Ledger.fileName
        let ledger = try Ledger.open(path: ledgerPath)
        let notifier = SystemdNotifier(environment: options.environment, logger: logger)
        state.withLock {
            $0.config = config
            $0.notifier = notifier
        }
        logger.info("ledger \(ledgerPath) open; inbox \(config.folders.inbox), outbox \(config.folders.outbox)")

        let scheduler = JobScheduler(ledger: ledger, runner: runner, settings: JobScheduler.Settings(config),
                                     memory: options.memory, status: { [weak self] line in self?.sendStatus(line) },
                                     logger: logger)
        let intake = ModelIntake(ledger: ledger, settings: { [weak self] in
            self?.configuration?.job ?? DaemonConfig.defaults.job
        }, logger: logger)
        let manager = Manager(ledger: ledger, scheduler: scheduler, intake: intake,
                              hooks: Manager.Hooks(configuration: { [weak self] in self?.configuration ?? config },
                                                   reload: { [weak self] in
                                                       guard let self else { throw RequestError.shuttingDown }
                                                       return try self.reload()
                                                   }),
                              version: options.version, configPath: options.configPath)
        state.withLock { $0.manager = manager }

        if let control {
            let passed = try SocketActivation.listenFDs(environment: options.environment, unsetEnvironment: true)
            try control.start(manager: manager, configuration: config.control, passedSockets: passed)
        }
        let recovered: [JobRecord]
        do {
            recovered = try scheduler.start()
        } catch {
            control?.stop()
            throw error
        }
        if !recovered.isEmpty { logger.notice("\(recovered.count) interrupted job(s) queued again") }

        let status = scheduler.statusLine()
        state.withLock {
            $0.ready = true
            $0.lastStatus = status
        }
        notifier?.ready(status: status)
        // Started here, on the thread that runs the daemon at its normal priority: the watchdog
        // thread inherits it and never waits behind compute.
        let watchdog = notifier?.startWatchdog(interval: SystemdNotifier.watchdogInterval(environment: options.environment))
        logger.notice("losad \(options.version) ready; \(status)")
        let inbox = InboxFeed(intake: intake, scheduler: scheduler, status: { [weak self] line in self?.sendStatus(line) },
                              logger: logger)
        inbox.start(config)
        state.withLock { $0.inbox = inbox }

        stopRequested.wait()
        shutDown(scheduler: scheduler, inbox: inbox, watchdog: watchdog, notifier: notifier)
    }

    /// Re-reads the configuration file and applies what can change while running (job defaults,
    /// scheduling, memory limit, priority, watch timing, inbox and outbox). Keys that need a restart
    /// keep their running values and are named in the result.
    /// - Throws: `ConfigError` for an invalid file; the running configuration stays in force.
    @discardableResult
    public func reload() throws -> ReloadResult {
        reloadLock.lock()
        defer { reloadLock.unlock() }
        guard let old = configuration, let manager else { throw RequestError.internalError("the daemon is not running yet") }
        let notifier = state.withLock { $0.notifier }
        notifier?.reloading(status: "reloading \(options.configPath)")
        defer { notifier?.ready(status: manager.scheduler.statusLine()) }
        let new: DaemonConfig
        do {
            new = try DaemonConfig.load(path: options.configPath)
            try DaemonService.createFolders(new)
        } catch {
            logger.error("configuration not reloaded: \(error); the running configuration stays in force")
            throw error
        }
        let restart = new.keysNeedingRestart(comparedTo: old)
        var applied = new
        applied.folders.state = old.folders.state
        applied.control = old.control
        state.withLock { $0.config = applied }
        manager.scheduler.update(JobScheduler.Settings(applied))
        state.withLock { $0.inbox }?.follow(applied, previous: old)
        if !restart.isEmpty {
            logger.warning("reloaded; \(restart.joined(separator: ", ")) keep their running values until losad restarts")
        } else {
            logger.notice(new == old ? "reloaded; nothing changed" : "reloaded \(options.configPath)")
        }
        return ReloadResult(restartNeeded: restart, changed: new != old)
    }

    // MARK: - Parts

    static func createFolders(_ config: DaemonConfig) throws {
        for (key, path) in [("folders.inbox", config.folders.inbox), ("folders.outbox", config.folders.outbox),
                            ("folders.state", config.folders.state), ("folders.state", config.folders.state + "/jobs")] {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                throw DaemonError.folder(key: key, path: path, reason: (error as NSError).localizedDescription)
            }
        }
    }

    /// STATUS=, once ready (READY=1 carries the first), and only when the line changed.
    private func sendStatus(_ line: String) {
        let notifier = state.withLock { s -> SystemdNotifier? in
            guard s.ready, s.lastStatus != line else { return nil }
            s.lastStatus = line
            return s.notifier
        }
        notifier?.status(line)
    }

    private func shutDown(scheduler: JobScheduler, inbox: InboxFeed, watchdog: WatchdogThread?, notifier: SystemdNotifier?) {
        let (reason, requestedAt, timeout) = state.withLock {
            ($0.stopReason ?? "stop requested", $0.stopRequestedAt ?? MonotonicClock.seconds(),
             $0.config?.service.stopTimeoutSeconds ?? DaemonConfig.defaults.service.stopTimeoutSeconds)
        }
        let running = scheduler.runningJobs().map { "job \($0.id)" }
        let what = running.isEmpty ? "stopping" : "stopping: checkpointing \(running.joined(separator: ", "))"
        notifier?.stopping(status: what)
        logger.notice("\(reason); \(what)")
        inbox.stop()   // a model being recorded now is recorded completely

        // Exit well inside the stop timeout: systemd kills at the timeout, and the ledger should be
        // written by then.
        let budget = timeout * 0.8 - (MonotonicClock.seconds() - requestedAt)
        let result = scheduler.stop(timeout: budget, reason: "the daemon stopped (\(reason))")
        scheduler.updates.finish()
        control?.stop()
        watchdog?.stop()
        do {
            try scheduler.ledger.checkpointWriteAheadLog()
        } catch {
            logger.warning("the ledger's write-ahead log was not folded into \(Ledger.fileName): \(error)")
        }
        if result.interrupted.isEmpty {
            logger.notice("stopped")
        } else {
            let ids = result.interrupted.map(String.init).joined(separator: ", ")
            let late = result.stoppedInTime ? "" : " (some runners had not returned within \(Int(budget.rounded())) s)"
            logger.notice("stopped; job(s) \(ids) queued again to resume at the next start\(late)")
        }
    }
}
