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
    /// Calls this connection carried, the current one included: a reused connection's failure before any answer
    /// may be the server having closed it while idle (`TurnReader` sends once more on a new one).
    private(set) var calls = 0
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
        let written = context.eventLoop.makePromise(of: Void.self)
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        written.futureResult.assumeIsolated().whenFailure { [self] error in
            // A header NIO refuses, or a connection that broke while writing: the call hears it, once.
            guard let exchange = self.exchange else { return }
            self.exchange = nil
            close()
            exchange.connectionFailed(error)
        }
    }

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
        if reusable, isOpen {
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

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
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
