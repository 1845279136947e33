import NIOCore
import NIOHTTP1

/// What an upstream connection hands its response to: the model call it carries (`TurnReader`). Called on the
/// connection's event loop.
protocol UpstreamExchange: AnyObject {
    /// One part of the answer, in order.
    func received(_ part: HTTPClientResponsePart)
    /// The connection failed or closed before the answer's end.
    func connectionFailed(_ error: any Error)
}

/// The last handler of an upstream HTTP/1.1 connection (after NIO's request encoder and response decoder, and
/// TLS where the endpoint has it): sends one call's request, hands the answer's parts to that call, holds the
/// socket's reads while the call's consumer catches up, and goes back to its loop's idle connections between
/// calls (`UpstreamConnections`). Everything here runs on the connection's event loop.
final class UpstreamConnection: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private var context: ChannelHandlerContext?
    private let idleList: LoopConnections
    /// The call in progress; `nil` while the connection is idle.
    private var exchange: (any UpstreamExchange)?
    /// Reads are held while a call's events wait for its consumer; a read NIO asked for meanwhile is issued when
    /// they are released.
    private var readsHeld = false
    private var readWanted = false
    /// Calls this connection carried, the current one included.
    private(set) var calls = 0
    /// The current call's request was written whole. Until then a failure proves the server never had the request,
    /// so it may be sent again on another connection without being billed twice (`TurnReader`).
    private(set) var requestWritten = false
    /// Bytes came after the current answer's end, in the read that ended it (`ResponseBoundary`): a connection that
    /// has anything unread after an end is never reused, since the next call would read it as its own answer.
    var bytesAfterEnd = false
    private(set) var isOpen = true
    /// Closes the connection when it stayed idle too long.
    var idleClose: Scheduled<Void>?

    init(idleList: LoopConnections) {
        self.idleList = idleList
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    // MARK: The call's side

    /// Sends `request` and hands its answer to `exchange`: the head and the body in one write.
    func send(_ request: UpstreamRequest, for exchange: any UpstreamExchange) {
        guard let context, isOpen else {
            exchange.connectionFailed(UpstreamTransportError.connectionClosed)
            return
        }
        self.exchange = exchange
        calls += 1
        requestWritten = false
        bytesAfterEnd = false
        let written = context.eventLoop.makePromise(of: Void.self)
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        written.futureResult.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success:
                requestWritten = true
            case .failure(let error):
                // A header NIO refuses, or a connection that broke while writing: the call hears it, once.
                guard let exchange = self.exchange else { return }
                self.exchange = nil
                close()
                exchange.connectionFailed(error)
            }
        }
    }

    /// Whether a call is in progress (`ResponseBoundary` closes a connection that speaks while idle).
    var isCarryingCall: Bool { exchange != nil }

    /// Holds the socket's reads until `releaseReads`.
    func holdReads() {
        readsHeld = true
    }

    func releaseReads() {
        readsHeld = false
        if readWanted, let context {
            readWanted = false
            context.read()
        }
    }

    /// The call is over with its answer's end: the connection goes back to the idle list when the answer allowed
    /// it (`reusable`: HTTP/1.1 keep-alive), else it closes.
    func finished(reusable: Bool) {
        exchange = nil
        releaseReads()
        if reusable, isOpen, !bytesAfterEnd {
            idleList.park(self)
        } else {
            close()
        }
    }

    /// Closes the connection; the call it carries (if any) is not told.
    func close() {
        exchange = nil
        guard isOpen else { return }
        isOpen = false
        context?.close(promise: nil)
    }

    // MARK: NIO's side

    /// The boundary before the decoder, when the pipeline has one.
    weak var boundary: ResponseBoundary?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data), let boundary, !boundary.readingLastByte { bytesAfterEnd = true }
        guard let exchange else {
            // Bytes on an idle connection: the server does not speak HTTP/1.1 as agreed; no call may use it.
            close()
            return
        }
        exchange.received(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        isOpen = false
        idleClose?.cancel()
        idleList.remove(self)
        if let exchange {
            self.exchange = nil
            exchange.connectionFailed(UpstreamTransportError.connectionClosed)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let exchange = self.exchange
        close()
        exchange?.connectionFailed(error)
    }

    func read(context: ChannelHandlerContext) {
        if readsHeld {
            readWanted = true
        } else {
            context.read()
        }
    }
}

/// Sits before the HTTP/1.1 response decoder and tells its connection whether bytes followed an answer's end in
/// the read that ended it: each read's last byte is handed to the decoder on its own, so an end decoded before
/// that byte had bytes after it. Those bytes (the start of a response nobody asked for) would stay in the
/// decoder and become the beginning of the next call's answer; the connection is closed instead of reused. Bytes
/// that arrive while the connection carries no call close it too.
final class ResponseBoundary: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// The connection this boundary reports to (the pipeline's last handler).
    weak var connection: UpstreamConnection?
    /// The decoder is reading a read's last byte.
    private(set) var readingLastByte = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        guard let connection, connection.isCarryingCall else {
            // Bytes on an idle connection: no call may use it.
            connection?.close()
            return
        }
        if buffer.readableBytes > 1, let leading = buffer.readSlice(length: buffer.readableBytes - 1) {
            readingLastByte = false
            context.fireChannelRead(wrapInboundOut(leading))
        }
        readingLastByte = true
        context.fireChannelRead(wrapInboundOut(buffer))
        readingLastByte = false
    }
}
