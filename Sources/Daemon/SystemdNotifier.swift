#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Synchronization

/// The sd_notify protocol (systemd's sd_notify(3), "Notification protocol"): newline-separated
/// KEY=VALUE assignments in one datagram to the AF_UNIX socket named by `$NOTIFY_SOCKET` — a path,
/// or an abstract name when it starts with "@".
///
/// Implemented here rather than through libsystemd so that the destination is explicit (tests
/// and several notifiers in one process) and so the watchdog thread needs no library state.
/// Notifications never throw at the caller: systemd not listening must not stop the daemon; the
/// first failure is logged.
public final class SystemdNotifier: Sendable {
    /// Where the datagrams go, as `$NOTIFY_SOCKET` spelled it.
    public let socketPath: String
    private let fd: Int32
    private let address: sockaddr_un
    private let addressLength: socklen_t
    private let logger: Logger
    private let failureLogged = Atomic<Bool>(false)

    /// A notifier for `$NOTIFY_SOCKET`, or nil when the process was not started by systemd with one.
    public convenience init?(environment: [String: String] = ProcessInfo.processInfo.environment,
                             logger: Logger = Logger(label: "losad.systemd")) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty else { return nil }
        do {
            try self.init(socketPath: path, logger: logger)
        } catch {
            logger.warning("NOTIFY_SOCKET=\(path) is unusable: \(error); systemd will not hear from losad")
            return nil
        }
    }

    /// A notifier for the socket `socketPath` ("/run/…" or "@abstract").
    public init(socketPath: String, logger: Logger = Logger(label: "losad.systemd")) throws {
        self.socketPath = socketPath
        self.logger = logger
        (address, addressLength) = try SystemdNotifier.socketAddress(socketPath)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemdError.errno("socket for \(socketPath)") }
        // A datagram to a socket whose reader has fallen behind blocks once its queue is full (10
        // datagrams by default): wait at most this long rather than stall the caller for good.
        var timeout = timeval(tv_sec: Int(SystemdNotifier.sendTimeoutSeconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// The address of a path or "@abstract" socket name.
    static func socketAddress(_ path: String) throws -> (sockaddr_un, socklen_t) {
        guard path.hasPrefix("/") || path.hasPrefix("@") else {
            throw SystemdError.invalid(name: "NOTIFY_SOCKET", value: path, reason: "an absolute path or an @abstract name")
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            throw SystemdError.invalid(name: "NOTIFY_SOCKET", value: path, reason: "at most \(capacity - 1) bytes")
        }
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }   // Linux abstract namespace: a leading NUL, no terminator
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let length = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract ? 0 : 1)
        return (address, socklen_t(length))
    }

    /// Seconds a notification may wait for room in the receiver's queue.
    public static let sendTimeoutSeconds = 2

    /// Sends `assignments` (KEY=VALUE each) as one datagram. Returns whether it was sent.
    /// - Parameter wait: whether to wait (up to `sendTimeoutSeconds`) when the receiver's queue is
    ///   full; a STATUS line is not worth waiting for, READY or STOPPING is.
    @discardableResult
    public func send(_ assignments: [String], wait: Bool = true) -> Bool {
        let message = Array(assignments.map { $0.replacingOccurrences(of: "\n", with: " ") }.joined(separator: "\n").utf8)
        var address = self.address
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                message.withUnsafeBytes {
                    sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | (wait ? 0 : Int32(MSG_DONTWAIT)), sockaddrPointer, addressLength)
                }
            }
        }
        if sent == message.count { return true }
        let reason = String(cString: strerror(errno))
        if !failureLogged.exchange(true, ordering: .relaxed) {
            logger.warning("cannot notify systemd at \(socketPath): \(reason)")
        }
        return false
    }

    /// READY=1: startup is finished (ledger open, socket listening).
    @discardableResult
    public func ready(status: String? = nil) -> Bool {
        send(["READY=1"] + (status.map { ["STATUS=\($0)"] } ?? []))
    }

    /// STATUS=…: one line `systemctl status` shows. Dropped rather than waited for when the
    /// receiver is behind (the next line replaces it anyway).
    @discardableResult
    public func status(_ text: String) -> Bool { send(["STATUS=\(text)"], wait: false) }

    /// WATCHDOG=1: the service is alive.
    @discardableResult
    public func watchdog() -> Bool { send(["WATCHDOG=1"]) }

    /// RELOADING=1 with MONOTONIC_USEC (what Type=notify-reload expects); send `ready()` when done.
    @discardableResult
    public func reloading(status: String? = nil) -> Bool {
        send(["RELOADING=1", "MONOTONIC_USEC=\(SystemdNotifier.monotonicMicroseconds())"] + (status.map { ["STATUS=\($0)"] } ?? []))
    }

    /// STOPPING=1: shutdown has begun.
    @discardableResult
    public func stopping(status: String? = nil) -> Bool {
        send(["STOPPING=1"] + (status.map { ["STATUS=\($0)"] } ?? []))
    }

    /// CLOCK_MONOTONIC in microseconds, the clock systemd compares MONOTONIC_USEC with.
    public static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }

    // MARK: - Watchdog

    /// Half of `$WATCHDOG_USEC`, in seconds, when systemd expects pings from this process
    /// (`$WATCHDOG_PID` unset or equal to `pid`); nil otherwise.
    public static func watchdogInterval(environment: [String: String] = ProcessInfo.processInfo.environment,
                                        pid: pid_t = getpid()) -> Double? {
        guard let text = environment["WATCHDOG_USEC"], let microseconds = UInt64(text), microseconds > 0 else { return nil }
        if let owner = environment["WATCHDOG_PID"], !owner.isEmpty {
            guard let owner = pid_t(owner), owner == pid else { return nil }
        }
        return Double(microseconds) / 2e6
    }

    /// Starts a thread that sends WATCHDOG=1 every `interval` seconds (default: `watchdogInterval()`);
    /// nil when systemd expects no pings. Start it from a thread at normal priority — a thread
    /// inherits its creator's scheduling class, and this one must never wait behind compute.
    public func startWatchdog(interval: Double? = SystemdNotifier.watchdogInterval()) -> WatchdogThread? {
        guard let interval, interval > 0 else { return nil }
        return WatchdogThread(interval: interval) { [self] in watchdog() }
    }
}

/// An OS thread (not a Swift concurrency task, so busy compute tasks cannot starve it) that calls
/// `ping` at a fixed interval until stopped.
public final class WatchdogThread: Sendable {
    public let interval: Double
    private let stopSignal = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let stopped = Atomic<Bool>(false)

    init(interval: Double, ping: @escaping @Sendable () -> Void) {
        self.interval = interval
        let thread = Thread { [stopSignal, finished] in
            ping()   // at once: the first deadline runs from the service's start
            while stopSignal.wait(timeout: .now() + interval) == .timedOut { ping() }
            finished.signal()
        }
        thread.name = "losad-watchdog"
        thread.start()
    }

    /// Stops the pings and waits for the thread to end. Safe to call more than once.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        stopSignal.signal()
        finished.wait()
    }

    deinit { stop() }
}
