#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Synchronization

/// A model found in the inbox that has stopped changing: a `.gguf` file or a Hugging Face folder.
public struct InboxCandidate: Sendable, Equatable {
    public enum Format: String, Sendable { case gguf, huggingFace = "huggingface" }

    /// The entry's path inside the inbox (as dropped; a symlink inside the inbox stays one).
    public var path: String
    /// The entry's name in the inbox.
    public var name: String
    public var format: Format
    /// Bytes of the file, or of every file of the folder.
    public var sizeBytes: Int64
    /// `ContentHash` of the file or folder, lowercase hex.
    public var contentHash: String
}

/// What the watcher reports.
public enum InboxEvent: Sendable, Equatable {
    /// A candidate was stable for the settle time and has been hashed.
    case ready(InboxCandidate)
    /// An entry that will not be taken, with the reason (reported once until it changes).
    case refused(path: String, reason: String)
}

/// Watches the inbox with inotify (IN_CREATE, IN_CLOSE_WRITE, IN_MOVED_TO, IN_DELETE, IN_Q_OVERFLOW)
/// plus a periodic rescan, and reports every candidate once it has been stable for the settle time.
///
/// Candidates are top-level entries: `*.gguf` files and folders holding `config.json` and at least
/// one `*.safetensors`. Hidden names and names ending in `.part`, `.tmp` or `~` are ignored (a folder
/// holding such a file is still being copied). A candidate is ready once the size and modification
/// time of the file — or of every file of the folder — stayed the same for the settle time; it is
/// then hashed and offered, and offered again only if it changes. Symlinks that resolve outside the
/// inbox are refused. inotify only says *when* to look: the scan itself decides, so a dropped event
/// (queue overflow) or a file that was there before the start costs at most one rescan interval.
///
/// The loop runs on its own thread: hashing a large model blocks it, never a Swift concurrency
/// thread; `run()` only waits for it.
public final class InboxWatcher: Sendable {
    public let inbox: String
    /// Ready candidates and refusals, in the order they were decided. Ends when `run()` returns.
    public let events: AsyncStream<InboxEvent>
    private let continuation: AsyncStream<InboxEvent>.Continuation
    private let logger: Logger
    private let shared: Mutex<Shared>

    struct Shared {
        var settleSeconds: Double
        var rescanSeconds: Double
        var stop = false
        var rescanRequested = false
        var started = false
        var forgotten: Set<String> = []
        /// Receives every event on the watcher's thread as well (`start(onEvent:)`).
        var sink: (@Sendable (InboxEvent) -> Void)?
    }

    private let finished = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - settleSeconds: how long a candidate must stay unchanged before it is taken.
    ///   - rescanSeconds: interval of full rescans.
    public init(inbox: String, settleSeconds: Double, rescanSeconds: Double, logger: Logger = Logger(label: "losad.inbox")) {
        self.inbox = inbox
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(of: InboxEvent.self, bufferingPolicy: .unbounded)
        shared = Mutex(Shared(settleSeconds: settleSeconds, rescanSeconds: rescanSeconds))
    }

    /// Changes the timing (a configuration reload); takes effect at the next check.
    public func update(settleSeconds: Double, rescanSeconds: Double) {
        shared.withLock {
            $0.settleSeconds = settleSeconds
            $0.rescanSeconds = rescanSeconds
        }
    }

    /// Scans the inbox at the next opportunity instead of waiting for the rescan interval.
    public func requestRescan() { shared.withLock { $0.rescanRequested = true } }

    /// Offers the entry named `name` again once it is stable, even if it has not changed
    /// (e.g. after its job was deleted from the ledger).
    public func forget(name: String) { shared.withLock { _ = $0.forgotten.insert(name) } }

    /// Watches until the calling task is cancelled, then finishes `events`. Call once.
    public func run() async {
        let first = shared.withLock { shared -> Bool in
            defer { shared.started = true }
            return !shared.started
        }
        guard first else {
            logger.error("inbox watcher for \(inbox) was started twice; the second run returns at once")
            return
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                let thread = Thread { [self] in
                    loop()
                    continuation.finish()
                    done.resume()
                }
                thread.name = "losad-inbox"
                thread.start()
            }
        } onCancel: {
            shared.withLock { $0.stop = true }
        }
    }

    /// Watches on the watcher's own thread without a Swift task, handing each event to `onEvent` on
    /// that thread (and to `events`) — for a daemon that must not depend on the Swift concurrency
    /// pool being free. Call once, instead of `run()`; `stop()` ends it.
    public func start(onEvent: @escaping @Sendable (InboxEvent) -> Void) {
        let first = shared.withLock { shared -> Bool in
            defer { shared.started = true }
            if !shared.started { shared.sink = onEvent }
            return !shared.started
        }
        guard first else {
            logger.error("inbox watcher for \(inbox) was started twice; the second start is ignored")
            return
        }
        let thread = Thread { [self] in
            loop()
            continuation.finish()
            finished.signal()
        }
        thread.name = "losad-inbox"
        thread.start()
    }

    /// Ends a watcher begun with `start(onEvent:)` and waits (at most `timeout` seconds; a hash in
    /// progress stops at its next chunk) until its thread has returned. Returns whether it had.
    @discardableResult
    public func stop(timeout: Double = 5) -> Bool {
        let running = shared.withLock { s -> Bool in
            s.stop = true
            return s.sink != nil
        }
        guard running else { return true }
        return finished.wait(timeout: .now() + timeout) == .success
    }

    private func emit(_ event: InboxEvent) {
        continuation.yield(event)
        shared.withLock { $0.sink }?(event)
    }

    // MARK: - The loop (watcher thread only)

    /// What the last look at an entry found.
    struct Tracked {
        var signature: [FileStamp]
        var stableSince: Double
        /// The signature last offered or refused; nil while not yet decided.
        var decided: [FileStamp]?
    }

    /// Identity and size of one file at one moment.
    struct FileStamp: Equatable {
        var name: String
        var size: Int64
        var modified: timespec
        var inode: UInt64

        static func == (a: FileStamp, b: FileStamp) -> Bool {
            a.name == b.name && a.size == b.size && a.inode == b.inode
                && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec
        }
    }

    /// What an inbox entry is right now.
    enum Look {
        case ignored
        case candidate(InboxCandidate.Format, [FileStamp])
        case refused(String, [FileStamp])
    }

    private func loop() {
        let fd = inotify_init1(Int32(IN_NONBLOCK) | Int32(IN_CLOEXEC))
        if fd < 0 { logger.warning("inotify unavailable (\(String(cString: strerror(errno)))); the inbox is only rescanned") }
        defer { if fd >= 0 { close(fd) } }
        var watching = false
        var tracked: [String: Tracked] = [:]
        var nextScan = 0.0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 8)
        defer { buffer.deallocate() }

        while true {
            let (settle, rescan, stop, requested, forgotten) = shared.withLock { s in
                defer { s.rescanRequested = false; s.forgotten = [] }
                return (s.settleSeconds, s.rescanSeconds, s.stop, s.rescanRequested, s.forgotten)
            }
            if stop { return }
            for name in forgotten { tracked[name]?.decided = nil }
            if fd >= 0 && !watching {
                let mask = UInt32(IN_CREATE) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO) | UInt32(IN_DELETE)
                    | UInt32(IN_MOVED_FROM) | UInt32(IN_ONLYDIR)
                if inotify_add_watch(fd, inbox, mask) >= 0 {
                    watching = true
                    nextScan = 0
                } else if nextScan == 0 {
                    logger.warning("cannot watch \(inbox): \(String(cString: strerror(errno))); retrying until it can be")
                }
            }
            let now = MonotonicClock.seconds()
            let full = requested || now >= nextScan
            if full { nextScan = now + rescan }
            refresh(&tracked, full: full, now: now)
            decide(&tracked, settle: settle)

            // Wake for the next settle check while something is pending, else for the next rescan;
            // never sleep past 250 ms so a stop is noticed promptly.
            let pending = tracked.values.contains { $0.decided == nil }
            let untilNext = pending ? min(max(settle / 5, 0.02), 0.25) : max(nextScan - MonotonicClock.seconds(), 0)
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, fd >= 0 ? 1 : 0, Int32(min(untilNext, 0.25) * 1000))
            if ready > 0 && fd >= 0 {
                if drain(fd, buffer) { watching = false }
                nextScan = 0
            }
        }
    }

    /// Reads every queued inotify event; any event means "look again". Returns whether the watch is gone.
    private func drain(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        var lost = false
        while true {
            let count = read(fd, buffer.baseAddress, buffer.count)
            guard count > 0 else { return lost }
            var offset = 0
            while offset + MemoryLayout<inotify_event>.size <= count {
                let event = buffer.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                if event.mask & UInt32(IN_Q_OVERFLOW) != 0 {
                    logger.notice("inotify queue overflowed; rescanning \(inbox)")
                }
                if event.mask & UInt32(IN_IGNORED) != 0 {
                    logger.warning("\(inbox) is no longer watched (removed or unmounted?); watching it again once it is back")
                    lost = true
                }
                offset += MemoryLayout<inotify_event>.size + Int(event.len)
            }
        }
    }

    /// Re-stats the entries: all of them on a full scan, else only those still pending.
    private func refresh(_ tracked: inout [String: Tracked], full: Bool, now: Double) {
        let names: [String]
        if full {
            guard let listed = try? FileManager.default.contentsOfDirectory(atPath: inbox) else {
                tracked.removeAll()
                return
            }
            names = listed
            for name in tracked.keys where !listed.contains(name) { tracked[name] = nil }
        } else {
            names = tracked.filter { $0.value.decided == nil }.map(\.key)
        }
        for name in names {
            switch look(at: name) {
            case .ignored:
                tracked[name] = nil
            case .candidate(_, let signature), .refused(_, let signature):
                if var entry = tracked[name] {
                    if entry.signature != signature {
                        entry.signature = signature
                        entry.stableSince = now
                        entry.decided = nil
                    }
                    tracked[name] = entry
                } else {
                    tracked[name] = Tracked(signature: signature, stableSince: now, decided: nil)
                }
            }
        }
    }

    /// Offers or refuses every entry that has been stable for `settle` seconds.
    private func decide(_ tracked: inout [String: Tracked], settle: Double) {
        for name in tracked.keys.sorted() {
            guard let entry = tracked[name], entry.decided == nil,
                  MonotonicClock.seconds() - entry.stableSince >= settle else { continue }
            let path = inbox + "/" + name
            switch look(at: name) {
            case .ignored:
                tracked[name] = nil
            case .refused(let reason, let signature):
                tracked[name]?.decided = signature
                logger.warning("refusing \(path): \(reason)")
                emit(.refused(path: path, reason: reason))
            case .candidate(let format, let signature):
                guard signature == entry.signature else { continue }   // changed since the last look: `refresh` restarts it
                do {
                    let stop = { self.shared.withLock { $0.stop } }
                    let hash = format == .gguf
                        ? try ContentHash.file(path, shouldStop: stop)
                        : try ContentHash.folder(path, files: signature.map(\.name), shouldStop: stop)
                    // Hashing takes a while: only a candidate that did not change meanwhile is offered.
                    guard case .candidate(_, let after) = look(at: name), after == signature else {
                        tracked[name]?.signature = []
                        continue
                    }
                    tracked[name]?.decided = signature
                    let size = signature.reduce(Int64(0)) { $0 + $1.size }
                    logger.info("ready: \(path) (\(size) bytes, sha256 \(hash.prefix(12))…)")
                    emit(.ready(InboxCandidate(path: path, name: name, format: format, sizeBytes: size, contentHash: hash)))
                } catch InboxError.stopped {
                    return
                } catch {
                    // Vanished or unreadable mid-hash: look again from scratch at the next scan.
                    logger.notice("\(error)")
                    tracked[name]?.signature = []
                }
            }
        }
    }

    // MARK: - Looking at one entry

    /// Whether `name` is a hidden or temporary name that is never taken.
    public static func isIgnoredName(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasSuffix(".part") || name.hasSuffix(".tmp") || name.hasSuffix("~")
    }

    private func look(at name: String) -> Look {
        if InboxWatcher.isIgnoredName(name) { return .ignored }
        let path = inbox + "/" + name
        var info = stat()
        guard lstat(path, &info) == 0 else { return .ignored }
        if (info.st_mode & S_IFMT) == S_IFLNK {
            guard let target = InboxWatcher.realPath(path) else { return .ignored }   // dangling: may be fixed later
            guard let root = InboxWatcher.realPath(inbox), target.hasPrefix(root + "/") else {
                return .refused("it is a symbolic link to \(target), outside the inbox", [InboxWatcher.stamp(name, info)])
            }
            guard stat(path, &info) == 0 else { return .ignored }
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            guard name.lowercased().hasSuffix(".gguf") else { return .ignored }
            return .candidate(.gguf, [InboxWatcher.stamp(name, info)])
        case S_IFDIR:
            return lookAtFolder(path)
        default:
            return .ignored
        }
    }

    /// A Hugging Face folder: every visible regular file, with config.json and a *.safetensors among them.
    private func lookAtFolder(_ folder: String) -> Look {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return .ignored }
        var stamps: [FileStamp] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            if InboxWatcher.isIgnoredName(name) { return .ignored }   // a copy still in progress
            let path = folder + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { return .ignored }
            if (info.st_mode & S_IFMT) == S_IFLNK {
                guard let target = InboxWatcher.realPath(path) else { return .ignored }
                guard let root = InboxWatcher.realPath(inbox), target.hasPrefix(root + "/") else {
                    return .refused("its file \(name) is a symbolic link to \(target), outside the inbox", [InboxWatcher.stamp(name, info)])
                }
                guard stat(path, &info) == 0 else { return .ignored }
            }
            if (info.st_mode & S_IFMT) == S_IFREG { stamps.append(InboxWatcher.stamp(name, info)) }
        }
        guard stamps.contains(where: { $0.name == "config.json" }),
              stamps.contains(where: { $0.name.hasSuffix(".safetensors") }) else { return .ignored }
        return .candidate(.huggingFace, stamps)
    }

    static func stamp(_ name: String, _ info: stat) -> FileStamp {
        FileStamp(name: name, size: Int64(info.st_size), modified: info.st_mtim, inode: UInt64(info.st_ino))
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
