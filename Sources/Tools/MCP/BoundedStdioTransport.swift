import Foundation
import Logging
import MCP
import NIOCore
import NIOPosix

/// MCP over standard input and output (newline-delimited JSON-RPC), with bounds the SDK's `StdioTransport` does
/// not have: a line longer than `maxMessageBytes` is skipped as it arrives (never held whole) and answered with
/// a JSON-RPC error, and input is read only as fast as the server takes messages (the pipe's own backpressure),
/// so no buffer or queue grows with what the client sends. Reads wait on the event loop instead of polling.
actor BoundedStdioTransport: Transport {
    nonisolated let logger: Logger
    private let inbound: InboundLines
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let maxMessageBytes: Int

    /// Serves MCP on this process's standard input and output with `body` (which starts the server and waits for
    /// it); the pipes are closed when it returns.
    static func withStandardIO(maxMessageBytes: Int, logger: Logger,
                               _ body: @Sendable (BoundedStdioTransport) async throws -> Void) async throws {
        // Duplicates, so NIO's closing them leaves the process's own descriptors alone.
        let (input, output) = (dup(STDIN_FILENO), dup(STDOUT_FILENO))
        let channel = try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .takingOwnershipOfDescriptors(input: input, output: output) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(BoundedLineDecoder(maxBytes: maxMessageBytes)))
                    return try NIOAsyncChannel<Line, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            let transport = BoundedStdioTransport(inbound: InboundLines(inbound.makeAsyncIterator()), outbound: outbound,
                                                  maxMessageBytes: maxMessageBytes, logger: logger)
            try await body(transport)
        }
    }

    private init(inbound: InboundLines, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, maxMessageBytes: Int, logger: Logger) {
        self.inbound = inbound
        self.outbound = outbound
        self.maxMessageBytes = maxMessageBytes
        self.logger = logger
    }

    func connect() async throws {}

    func disconnect() async {
        outbound.finish()
    }

    func send(_ data: Data) async throws {
        var buffer = ByteBuffer(bytes: data)
        buffer.writeInteger(UInt8(ascii: "\n"))
        try await outbound.write(buffer)
    }

    func receive() -> AsyncThrowingStream<Data, any Error> {
        let inbound = inbound
        return AsyncThrowingStream { [weak self] in
            // Pulled one message at a time: the next line is read only when the server asks for it.
            while let line = try await inbound.next() {
                switch line {
                case .message(let bytes):
                    return Data(bytes.readableBytesView)
                case .tooLong(let length):
                    await self?.refuse(length: length)
                }
            }
            return nil
        }
    }

    /// Answers a line that was too long (its id unknown, as it was not read) and logs it.
    private func refuse(length: Int) async {
        logger.warning("MCP message skipped: longer than the limit", metadata: ["bytes": "\(length)", "limit": "\(maxMessageBytes)"])
        let answer = #"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"The message is \#(length) bytes long; "#
            + #"at most \#(maxMessageBytes) are read."}}"#
        try? await send(Data(answer.utf8))
    }
}

/// One line of input: a message, or the length of one that was too long and skipped.
enum Line: Sendable {
    case message(ByteBuffer)
    case tooLong(Int)
}

/// The inbound iterator, pulled by one consumer at a time: `AsyncThrowingStream(unfolding:)` never calls its
/// closure again before the previous call returned.
private final class InboundLines: @unchecked Sendable {
    private var iterator: NIOAsyncChannelInboundStream<Line>.AsyncIterator

    init(_ iterator: NIOAsyncChannelInboundStream<Line>.AsyncIterator) {
        self.iterator = iterator
    }

    func next() async throws -> Line? {
        try await iterator.next()
    }
}

/// Splits input into lines of at most `maxBytes` (without their newline); a longer line is dropped as it arrives
/// and told as `.tooLong`, so the buffer never holds more than `maxBytes` plus one read. Empty lines are skipped.
struct BoundedLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = Line

    let maxBytes: Int
    /// Bytes of the current line already dropped (it was too long).
    private var dropped = 0
    /// Bytes at the front of the buffer already searched for a newline.
    private var searched = 0

    init(maxBytes: Int) {
        self.maxBytes = maxBytes
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        guard let newline = view.dropFirst(searched).firstIndex(of: UInt8(ascii: "\n")) else {
            searched = view.count
            if dropped > 0 || view.count > maxBytes {
                // Too long already: drop what came, remember how much.
                dropped += view.count
                buffer.moveReaderIndex(forwardBy: view.count)
                searched = 0
            }
            return .needMoreData
        }
        let length = newline - view.startIndex
        searched = 0
        if dropped > 0 || length > maxBytes {
            buffer.moveReaderIndex(forwardBy: length + 1)
            context.fireChannelRead(wrapInboundOut(.tooLong(dropped + length)))
            dropped = 0
            return .continue
        }
        let line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if line.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(.message(line))) }
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A last line without its newline still counts.
        if buffer.readableBytes > 0 || dropped > 0 {
            let length = dropped + buffer.readableBytes
            if dropped > 0 || buffer.readableBytes > maxBytes {
                context.fireChannelRead(wrapInboundOut(.tooLong(length)))
            } else {
                context.fireChannelRead(wrapInboundOut(.message(buffer.readSlice(length: buffer.readableBytes)!)))
            }
            buffer.moveReaderIndex(to: buffer.writerIndex)
            dropped = 0
        }
        return .needMoreData
    }
}
