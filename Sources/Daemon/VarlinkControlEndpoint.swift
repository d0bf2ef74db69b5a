#if canImport(Glibc)
import Glibc
#endif
import Control
import Foundation
import Logging
import Synchronization

/// The control endpoint `losad run` starts: the varlink server of module Control (`ControlServer`)
/// serving `io.losa.Manager` through `ControlService`.
///
/// It listens on the socket systemd passed (socket activation through losad.socket: the first
/// listening AF_UNIX stream socket of `LISTEN_FDS`), or else creates `[control] socket` with
/// `socket_mode` and `socket_group` before it listens. State changes are open to root, the daemon's
/// user and the members of `socket_group` (with `socket_group = ""`, of the daemon's own group).
public final class VarlinkControlEndpoint: ControlEndpoint {
    private let info: VarlinkServiceInfo
    private let compute: @Sendable (DaemonConfig) -> ComputeDescription
    private let serverConfiguration: ControlServer.Configuration
    private let logger: Logger
    private let state = Mutex(State())

    struct State {
        var server: ControlServer?
        var serving: Task<Void, Never>?
        var stopped = false
    }

    /// - Parameters:
    ///   - info: what `org.varlink.service.GetInfo` answers.
    ///   - compute: the device and kernel `Status` reports (`ComputeDescription.current` in losad).
    public init(info: VarlinkServiceInfo, compute: @escaping @Sendable (DaemonConfig) -> ComputeDescription,
                serverConfiguration: ControlServer.Configuration = ControlServer.Configuration(),
                logger: Logger = Logger(label: "losad.control")) {
        self.info = info
        self.compute = compute
        self.serverConfiguration = serverConfiguration
        self.logger = logger
    }

    /// The socket file created (nil when socket-activated or not started).
    public var socketPath: String? { state.withLock { $0.server?.socketPath } }

    /// Connections open now.
    public var connectionCount: Int { state.withLock { $0.server?.connectionCount ?? 0 } }

    /// Binds the socket and starts serving; returns once clients can connect. Blocks its caller
    /// (the daemon's start, on its own thread) while NIO binds.
    /// - Throws: `ConfigError` when `socket_group` names no group here; `ControlSocketError` when the
    ///   socket cannot be created or the passed one cannot serve.
    public func start(manager: Manager, configuration: DaemonConfig.Control, passedSockets: [SocketActivation.PassedSocket]) throws {
        let access = try Self.accessPolicy(configuration, file: manager.configPath)
        let socket: ControlSocket
        if let passed = passedSockets.first(where: \.isListeningUnixStream) {
            socket = .inherited(descriptor: passed.fd)
            logger.info("control socket passed by systemd (descriptor \(passed.fd)\(passed.name.map { ", \($0)" } ?? ""))")
        } else {
            if !passedSockets.isEmpty {
                logger.warning("none of the \(passedSockets.count) descriptors systemd passed is a listening Unix stream socket; binding \(configuration.socketPath)")
            }
            try Self.createParentFolder(of: configuration.socketPath)
            socket = .path(configuration.socketPath, mode: UInt32(configuration.socketMode),
                           group: configuration.socketGroup == nil ? nil : access.controlGroup)
        }
        let service = ControlService(manager: manager, compute: compute,
                                     connections: { [weak self] in self?.connectionCount ?? 0 }, logger: logger)
        let server = try Self.blocking { [info, serverConfiguration, logger] in
            try await ControlServer.bind(socket, service: service, access: access, info: info,
                                         configuration: serverConfiguration, logger: logger)
        }
        let logger = logger
        let serving = Task {
            do {
                try await server.run()
            } catch {
                logger.error("the control server stopped: \(error)")
            }
        }
        state.withLock {
            $0.server = server
            $0.serving = serving
        }
        let group = access.controlGroupName ?? access.controlGroup.map(String.init) ?? "none"
        logger.notice("control socket \(server.socketPath ?? "passed by systemd") listening; state changes by root, uid \(access.daemonUID) and group \(group)")
    }

    /// Closes the socket and every connection, removes the socket file it created, and waits (at
    /// most 5 s) until the server has let go.
    public func stop() {
        let serving = state.withLock { s -> Task<Void, Never>? in
            guard !s.stopped else { return nil }
            s.stopped = true
            return s.serving
        }
        guard let serving else { return }
        serving.cancel()
        let done = DispatchSemaphore(value: 0)
        Task {
            await serving.value
            done.signal()
        }
        if done.wait(timeout: .now() + 5) == .timedOut {
            logger.warning("the control server did not close within 5 s")
        }
    }

    // MARK: - Parts

    /// Who may change state: root, this process's user, and the group of `socket_group` — a name
    /// looked up in the group database or a numeric id — or, with `socket_group = ""`, the daemon's
    /// own group (the group a socket file it creates gets).
    static func accessPolicy(_ configuration: DaemonConfig.Control, file: String) throws -> AccessPolicy {
        guard let name = configuration.socketGroup else {
            return AccessPolicy(daemonUID: getuid(), controlGroup: getegid())
        }
        if let gid = UInt32(name) { return AccessPolicy(daemonUID: getuid(), controlGroup: gid) }
        guard let gid = AccessPolicy.groupID(named: name) else {
            throw ConfigError.invalidValue(file: file, key: "control.socket_group", value: "\"\(name)\"",
                                           allowed: "a group that exists on this machine (create it, e.g. with systemd-sysusers, or set \"\" for the daemon's own group)")
        }
        return AccessPolicy(daemonUID: getuid(), controlGroup: gid, controlGroupName: name)
    }

    /// The socket's folder (e.g. /run/losad when not started by systemd, whose RuntimeDirectory= would make it).
    static func createParentFolder(of path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent
        guard !folder.isEmpty, !FileManager.default.fileExists(atPath: folder) else { return }
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o755])
        } catch {
            throw DaemonError.folder(key: "control.socket", path: folder, reason: (error as NSError).localizedDescription)
        }
    }

    /// Runs async `work` to its end from a thread that is not part of Swift concurrency's pool.
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
        let outcome = Outcome<T>()
        Task {
            do { outcome.set(.success(try await work())) } catch { outcome.set(.failure(error)) }
        }
        return try outcome.wait().get()
    }

    /// A result handed from a task to a waiting thread.
    private final class Outcome<T: Sendable>: Sendable {
        private let value = Mutex<Result<T, any Error>?>(nil)
        private let done = DispatchSemaphore(value: 0)

        func set(_ result: Result<T, any Error>) {
            value.withLock { $0 = result }
            done.signal()
        }

        func wait() -> Result<T, any Error> {
            done.wait()
            return value.withLock { $0! }
        }
    }
}
