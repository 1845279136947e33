import ChatCore
import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Sits in every HTTP/1 connection's pipeline, between the HTTP codec and Hummingbird's request handling, and
/// serves the event stream answered on it (`EventStream` attaches for the life of one stream):
/// - the stream's events: each is written and flushed from here, straight down the pipeline (`writeBody`), or,
///   while the connection is unwritable, once it is writable again (`writeBodyWhenWritable`);
/// - hang-up: when the client closes its side, or the connection ends or fails, it tells the stream at once, on
///   the event loop (the stream then cancels its producer: the upstream call and tools stop);
/// - keepalives: while a stream is attached, a comment goes out whenever nothing was written for the interval;
///   it goes between body parts, and each SSE message is one body part, so it never splits a message;
/// - write deadline: a connection that stays unwritable (its client reads nothing) for `writeTimeout` is
///   closed, which ends its stream like a hang-up. Meanwhile memory stays bounded: the stream's writes wait
///   while the connection is unwritable, and the upstream is not read either.
///
/// It never reads the inbound stream (Hummingbird's `consumeWithCancellationOnInboundClose` does, and ending
/// that read ended keep-alive after every stream). All its state lives on the connection's event loop.
final class StreamConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// The stream being answered, and how often it wants a keepalive.
    private struct Attachment {
        let signal: StreamEndSignal
        let interval: TimeAmount
    }

    private static let comment = ByteBuffer(bytes: SSEEncoder.keepalive)

    private let writeTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var stream: Attachment?
    /// A response head went out and its end did not: a keepalive may be written.
    private var inBody = false
    private var lastWrite = NIODeadline.now()
    private var keepaliveTimer: Scheduled<Void>?
    private var writeDeadline: Scheduled<Void>?
    /// Writes waiting for the connection to become writable again.
    private var writableWaiters: [EventLoopPromise<Void>] = []

    init(writeTimeout: TimeAmount) {
        self.writeTimeout = writeTimeout
    }

    // MARK: The stream's side (called on the event loop)

    /// Serves `signal`'s stream from now on; tells it at once if the connection is gone already.
    func attach(_ signal: StreamEndSignal, keepalive interval: TimeAmount) {
        guard let context, context.channel.isActive else {
            signal.fire(.hungUp)
            return
        }
        stream = Attachment(signal: signal, interval: interval)
        lastWrite = .now()
        scheduleKeepalive(context, at: lastWrite + interval)
    }

    /// Stops serving `signal`'s stream (no keepalive after this).
    func detach(_ signal: StreamEndSignal) {
        guard stream?.signal === signal else { return }
        stream = nil
        keepaliveTimer?.cancel()
        keepaliveTimer = nil
    }

    // MARK: The stream's events (called on the event loop)

    /// Whether a body part written now goes out at once: `false` while the connection is unwritable (its client
    /// reads slower than the stream writes; the writer then waits with `writeBodyWhenWritable`). Throws when the
    /// connection is gone.
    func canWriteBody() throws -> Bool {
        guard let context, context.channel.isActive else { throw StreamFinished() }
        return context.channel.isWritable
    }

    /// Writes and flushes one body part (one whole SSE message), after `canWriteBody` said it goes out at once.
    /// The part goes straight down the pipeline from here, with no async writer between the stream and the
    /// connection: the response's head went out before the stream's first event (Hummingbird writes it before
    /// it calls the body), and its end goes out after the last.
    func writeBody(_ buffer: ByteBuffer) {
        guard let context else { return }
        context.writeAndFlush(wrapOutboundOut(.body(buffer)), promise: nil)
        lastWrite = .now()
    }

    /// Writes `buffer` once the connection is writable; fails when the connection ends first.
    func writeBodyWhenWritable(_ buffer: ByteBuffer, eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        do {
            if try canWriteBody() {
                writeBody(buffer)
                return eventLoop.makeSucceededVoidFuture()
            }
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let promise = eventLoop.makePromise(of: Void.self)
        writableWaiters.append(promise)
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        return promise.futureResult.flatMap { loopBound.value.writeBodyWhenWritable(buffer, eventLoop: eventLoop) }
    }

    private func wakeWriters(failing: Bool) {
        guard !writableWaiters.isEmpty else { return }
        let waiters = writableWaiters
        writableWaiters = []
        for waiter in waiters {
            if failing { waiter.fail(StreamFinished()) } else { waiter.succeed() }
        }
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            inBody = head.status.kind != .informational
        case .body:
            if stream != nil { lastWrite = .now() }
        case .end:
            inBody = false
            keepaliveTimer?.cancel()
            keepaliveTimer = nil
        }
        context.write(data, promise: promise)
    }

    private func scheduleKeepalive(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        keepaliveTimer?.cancel()
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        keepaliveTimer = context.eventLoop.scheduleTask(deadline: deadline) { loopBound.value.keepaliveDue() }
    }

    private func keepaliveDue() {
        keepaliveTimer = nil
        guard let context, let stream, !stream.signal.hasEnded else { return }
        let now = NIODeadline.now()
        if inBody, now >= lastWrite + stream.interval {
            context.writeAndFlush(wrapOutboundOut(.body(Self.comment)), promise: nil)
            lastWrite = now
        }
        // Due one interval after the last write (this keepalive, or the event that made it unnecessary).
        scheduleKeepalive(context, at: lastWrite + stream.interval)
    }

    // MARK: Inbound: hang-up and writability

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed? = event as? ChannelEvent { stream?.signal.fire(.hungUp) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stream?.signal.fire(.hungUp)
        stopTimers()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        stream?.signal.fire(.hungUp)
        context.fireErrorCaught(error)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            writeDeadline?.cancel()
            writeDeadline = nil
            wakeWriters(failing: false)
        } else if writeDeadline == nil {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            writeDeadline = context.eventLoop.scheduleTask(in: writeTimeout) {
                loopBound.value.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Life

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stream?.signal.fire(.hungUp)
        stream = nil
        stopTimers()
        self.context = nil
    }

    private func stopTimers() {
        wakeWriters(failing: true)
        keepaliveTimer?.cancel()
        keepaliveTimer = nil
        writeDeadline?.cancel()
        writeDeadline = nil
    }
}
