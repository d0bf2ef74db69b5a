import NIOCore

/// Splits a varlink byte stream into messages: each message is one JSON object
/// followed by a NUL byte (https://varlink.org/Method-Call). Emits the message
/// without its NUL. A message longer than `maximumBytes` is an error, so a
/// client cannot make the peer buffer without bound; bytes left without a NUL
/// when the stream ends are discarded, being no message at all.
public struct VarlinkFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public let maximumBytes: Int

    public init(maximumBytes: Int) {
        precondition(maximumBytes > 0, "a varlink message limit must be positive")
        self.maximumBytes = maximumBytes
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let end = buffer.readableBytesView.firstIndex(of: 0) else {
            if buffer.readableBytes > maximumBytes {
                throw VarlinkProtocolError.messageTooLarge(bytes: buffer.readableBytes, limit: maximumBytes)
            }
            return .needMoreData
        }
        let length = end - buffer.readerIndex
        if length > maximumBytes {
            throw VarlinkProtocolError.messageTooLarge(bytes: length, limit: maximumBytes)
        }
        let message = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        context.fireChannelRead(Self.wrapInboundOut(message))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer,
        seenEOF: Bool
    ) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}

/// A peer broke the varlink wire protocol; the connection cannot go on.
public enum VarlinkProtocolError: Error, Equatable, CustomStringConvertible {
    /// A message (or bytes still without their NUL) exceeded the limit.
    case messageTooLarge(bytes: Int, limit: Int)
    /// A message was not a JSON object of the expected shape.
    case malformedMessage(reason: String)
    /// A stream of replies ended without a last reply (`continues` false).
    case unfinishedStream(method: String)

    public var description: String {
        switch self {
        case .messageTooLarge(let bytes, let limit):
            return "varlink message of \(bytes) bytes or more exceeds the limit of \(limit) bytes"
        case .malformedMessage(let reason):
            return "malformed varlink message: \(reason)"
        case .unfinishedStream(let method):
            return "the replies to \(method) ended without a last reply"
        }
    }
}
