import Foundation
import NIOCore
import NIOPosix

/// The client could not talk to the service.
public enum VarlinkClientError: Error, CustomStringConvertible {
    /// Nothing accepted the connection at `path` (`errno` from connect(2) when known).
    case cannotConnect(path: String, errno: Int32?, reason: String)
    /// The service closed the connection before the reply came.
    case connectionClosed(path: String)
    /// The service broke the protocol.
    case protocolViolation(VarlinkProtocolError)

    public var description: String {
        switch self {
        case .cannotConnect(let path, _, let reason): return "cannot connect to \(path): \(reason)"
        case .connectionClosed(let path): return "the service at \(path) closed the connection before it answered"
        case .protocolViolation(let error): return "\(error)"
        }
    }
}

/// A varlink client on a Unix socket (https://varlink.org), for losactl and
/// the tests: one connection, calls made one after another.
public enum VarlinkClient {
    /// Connects to `socketPath`, runs `body` with the connection and closes it.
    /// Replies longer than `maximumMessageBytes` are a protocol violation.
    public static func withConnection<Result: Sendable>(
        socketPath: String,
        maximumMessageBytes: Int = 16 << 20,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        _ body: (VarlinkConnection) async throws -> Result
    ) async throws -> Result {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: eventLoopGroup)
                .connectTimeout(.seconds(10))
                .connect(unixDomainSocketPath: socketPath) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(VarlinkFrameDecoder(maximumBytes: maximumMessageBytes)))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch let error as IOError {
            throw VarlinkClientError.cannotConnect(path: socketPath, errno: error.errnoCode,
                                                   reason: String(cString: strerror(error.errnoCode)))
        } catch {
            throw VarlinkClientError.cannotConnect(path: socketPath, errno: nil, reason: "\(error)")
        }
        return try await channel.executeThenClose { inbound, outbound in
            let connection = VarlinkConnection(path: socketPath, inbound: inbound.makeAsyncIterator(), outbound: outbound,
                                               allocator: channel.channel.allocator)
            return try await body(connection)
        }
    }
}

/// One open varlink connection. Calls are made one at a time, as varlink
/// requires replies to come back in the order of the calls.
public final class VarlinkConnection {
    public let path: String
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let allocator: ByteBufferAllocator

    init(path: String, inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
         outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, allocator: ByteBufferAllocator) {
        self.path = path
        self.inbound = inbound
        self.outbound = outbound
        self.allocator = allocator
    }

    /// Calls `method` and returns its reply's parameters as `R`, or throws the
    /// `VarlinkError` it answered with.
    public func call<P: Encodable, R: Decodable>(_ method: String, _ parameters: P, returning: R.Type) async throws -> R {
        try await send(VarlinkCall(method: method, parameters: parameters).message)
        let (result, continues) = try await receive(R.self)
        if continues {
            throw VarlinkClientError.protocolViolation(.malformedMessage(reason: "\(method) answered with continues to a call without more"))
        }
        return try result.get()
    }

    /// Calls `method` without waiting for (or getting) a reply.
    public func callOneway<P: Encodable>(_ method: String, _ parameters: P) async throws {
        try await send(VarlinkCall(method: method, parameters: parameters, oneway: true).message)
    }

    /// Calls `method` with `more` and hands each reply to `body`, until the
    /// reply without `continues`; an error reply is thrown.
    public func callMore<P: Encodable, R: Decodable>(
        _ method: String, _ parameters: P, returning: R.Type, _ body: (R) async throws -> Void
    ) async throws {
        try await send(VarlinkCall(method: method, parameters: parameters, more: true).message)
        while true {
            let (result, continues) = try await receive(R.self)
            try await body(try result.get())
            if !continues { return }
        }
    }

    /// Sends `bytes` followed by a NUL, as they are (tests of malformed input).
    public func send(_ bytes: Data) async throws {
        var buffer = allocator.buffer(capacity: bytes.count + 1)
        buffer.writeBytes(bytes)
        buffer.writeInteger(UInt8(0))
        do {
            try await outbound.write(buffer)
        } catch {
            throw VarlinkClientError.connectionClosed(path: path)
        }
    }

    /// The next message, without its NUL; nil when the service closed the connection.
    public func receiveMessage() async throws -> Data? {
        do {
            guard let message = try await inbound.next() else { return nil }
            return Data(message.readableBytesView)
        } catch let error as VarlinkProtocolError {
            throw VarlinkClientError.protocolViolation(error)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            return nil
        }
    }

    private func receive<R: Decodable>(_ type: R.Type) async throws -> (Result<R, VarlinkError>, Bool) {
        guard let message = try await receiveMessage() else { throw VarlinkClientError.connectionClosed(path: path) }
        do {
            let decoded = try VarlinkReply.decode(message, as: R.self)
            return (decoded.result, decoded.continues)
        } catch let error as VarlinkProtocolError {
            throw VarlinkClientError.protocolViolation(error)
        }
    }
}
