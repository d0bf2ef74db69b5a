import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The varlink server on the control socket (https://varlink.org): accepts
/// connections, learns each caller's credentials, reads NUL-terminated calls
/// one at a time and answers them in order through a `VarlinkDispatcher`.
///
/// A connection is dropped when it breaks the protocol (a message that is not
/// a JSON call, one over `maximumMessageBytes`), when it stays `idleTimeout`
/// without a complete call while none is in progress (a client that connects
/// and sends nothing, or only part of a message), and when it disconnects (a
/// stream it was following stops at once). Nothing about a connection
/// outlives it: its task, buffers and timer end with it.
public final class ControlServer: Sendable {
    public struct Configuration: Sendable {
        /// The largest call accepted, in bytes without the NUL.
        public var maximumMessageBytes: Int
        /// How long a connection may sit without a call before it is closed.
        public var idleTimeout: Duration
        /// Connections served at once; more are closed as they arrive.
        public var maximumConnections: Int

        public init(maximumMessageBytes: Int = 65_536, idleTimeout: Duration = .seconds(60), maximumConnections: Int = 128) {
            self.maximumMessageBytes = maximumMessageBytes
            self.idleTimeout = idleTimeout
            self.maximumConnections = maximumConnections
        }
    }

    typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    public let dispatcher: VarlinkDispatcher
    public let configuration: Configuration
    /// The socket file this server created, nil for an inherited socket.
    public let socketPath: String?
    private let listener: NIOAsyncChannel<Connection, Never>
    private let createdFile: NIOLockedValueBox<(path: String, device: UInt64, inode: UInt64)?>
    private let openConnections = NIOLockedValueBox(0)
    private let logger: Logger

    /// Connections open right now.
    public var connectionCount: Int { openConnections.withLockedValue { $0 } }

    private init(dispatcher: VarlinkDispatcher, configuration: Configuration, listener: NIOAsyncChannel<Connection, Never>,
                 createdFile: (path: String, device: UInt64, inode: UInt64)?, logger: Logger) {
        self.dispatcher = dispatcher
        self.configuration = configuration
        self.listener = listener
        self.socketPath = createdFile?.path
        self.createdFile = NIOLockedValueBox(createdFile)
        self.logger = logger
    }

    /// Listens on `socket` and returns once clients can connect (the moment
    /// for sd_notify READY=1); `run()` then serves them.
    public static func bind(
        _ socket: ControlSocket,
        dispatcher: VarlinkDispatcher,
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "losa.control"),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> ControlServer {
        let prepared = try socket.prepare()
        let maximumMessageBytes = configuration.maximumMessageBytes
        let listener: NIOAsyncChannel<Connection, Never>
        do {
            listener = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.backlog, value: 128)
                .bind(prepared.descriptor) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(VarlinkFrameDecoder(maximumBytes: maximumMessageBytes)))
                        return try Connection(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8)))
                    }
                }
        } catch {
            // NIO owns the descriptor once it has it, and closes it on failure.
            if let file = prepared.createdFile { ControlSocket.removeCreatedFile(file) }
            throw error
        }
        return ControlServer(dispatcher: dispatcher, configuration: configuration, listener: listener,
                             createdFile: prepared.createdFile, logger: logger)
    }

    /// Listens on `socket` and serves `io.losa.Manager` from `service`.
    public static func bind(
        _ socket: ControlSocket,
        service: any ManagerService,
        access: AccessPolicy,
        info: VarlinkServiceInfo,
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "losa.control")
    ) async throws -> ControlServer {
        let dispatcher = VarlinkDispatcher(info: info, interfaces: [ManagerInterface(service: service, access: access)])
        return try await bind(socket, dispatcher: dispatcher, configuration: configuration, logger: logger)
    }

    /// Serves until the calling task is cancelled, then closes the socket and
    /// every connection and removes the socket file it created. Call it once.
    public func run() async throws {
        defer { removeSocketFile() }
        try await listener.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { group in
                do {
                    for try await connection in inbound {
                        let admitted = openConnections.withLockedValue { count in
                            guard count < configuration.maximumConnections else { return false }
                            count += 1
                            return true
                        }
                        guard admitted else {
                            logger.warning("control connection refused: \(configuration.maximumConnections) connections are open")
                            try? await connection.executeThenClose { _, _ in }
                            continue
                        }
                        group.addTask {
                            await self.serve(connection)
                            self.openConnections.withLockedValue { $0 -= 1 }
                        }
                    }
                } catch is CancellationError {}
            }
        }
    }

    private func removeSocketFile() {
        if let file = createdFile.withLockedValue({ file -> (path: String, device: UInt64, inode: UInt64)? in
            defer { file = nil }
            return file
        }) {
            ControlSocket.removeCreatedFile(file)
        }
    }

    // MARK: - One connection

    private func serve(_ connection: Connection) async {
        let channel = connection.channel
        let caller: PeerCredentials
        do {
            caller = try await Self.peerCredentials(of: channel)
        } catch {
            logger.warning("control connection closed: cannot read its credentials: \(error)")
            try? await connection.executeThenClose { _, _ in }
            return
        }
        do {
            try await connection.executeThenClose { inbound, outbound in
                var idle = scheduleIdleClose(channel)
                defer { idle.cancel() }
                for try await message in inbound {
                    idle.cancel()
                    try await answer(Data(message.readableBytesView), from: caller, on: channel, outbound: outbound)
                    idle = scheduleIdleClose(channel)
                }
            }
        } catch is CancellationError {
        } catch {
            logger.debug("control connection from \(caller) closed: \(error)")
        }
    }

    private func scheduleIdleClose(_ channel: any Channel) -> Scheduled<Void> {
        let timeout = configuration.idleTimeout.components
        let nanoseconds = timeout.seconds * 1_000_000_000 + timeout.attoseconds / 1_000_000_000
        return channel.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
            channel.close(promise: nil)
        }
    }

    private func answer(_ message: Data, from caller: PeerCredentials, on channel: any Channel,
                        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws {
        let call = try VarlinkCall(message: message)
        let response = await dispatcher.handle(call, caller: caller)
        switch response {
        case .reply(let reply):
            if !call.oneway { try await outbound.write(Self.frame(reply, allocator: channel.allocator)) }
        case .error(let error):
            if !call.oneway { try await outbound.write(Self.frame(try VarlinkReply.encode(error), allocator: channel.allocator)) }
        case .stream(let replies):
            if call.oneway {
                // Nobody listens: iterating in a cancelled task ends the stream at once.
                Task { for await _ in replies {} }.cancel()
                return
            }
            try await forward(replies, of: call, on: channel, outbound: outbound)
        }
    }

    /// Writes a stream of replies until its last one. The stream is consumed in
    /// a task that the channel's closing cancels, so a client that disconnects
    /// mid-stream stops it at once instead of at the next write.
    private func forward(_ replies: AsyncStream<VarlinkStreamItem>, of call: VarlinkCall, on channel: any Channel,
                         outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws {
        let allocator = channel.allocator
        let consumer = Task {
            for await item in replies {
                switch item {
                case .reply(let reply, let continues):
                    try await outbound.write(Self.frame(reply, allocator: allocator))
                    if !continues { return }
                case .error(let error):
                    try await outbound.write(Self.frame(try VarlinkReply.encode(error), allocator: allocator))
                    return
                }
            }
            try Task.checkCancellation()
            throw VarlinkProtocolError.unfinishedStream(method: call.method)
        }
        channel.closeFuture.whenComplete { _ in consumer.cancel() }
        try await withTaskCancellationHandler {
            try await consumer.value
        } onCancel: {
            consumer.cancel()
        }
    }

    static func frame(_ message: Data, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: message.count + 1)
        buffer.writeBytes(message)
        buffer.writeInteger(UInt8(0))
        return buffer
    }

    static func peerCredentials(of channel: any Channel) async throws -> PeerCredentials {
        guard let provider = channel as? any SocketOptionProvider else {
            throw ControlSocketError.unusableDescriptor(descriptor: -1, reason: "the channel has no socket options")
        }
        let kernel: PeerCredentials.KernelCredentials = try await provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(PeerCredentials.peerCredentialsOption)).get()
        return PeerCredentials(pid: kernel.pid, uid: kernel.uid, gid: kernel.gid,
                               groups: PeerCredentials.supplementaryGroups(pid: kernel.pid, uid: kernel.uid, gid: kernel.gid))
    }
}
