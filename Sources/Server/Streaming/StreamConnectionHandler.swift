import ChatCore
import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Sits in every HTTP/1 connection's pipeline, between the HTTP codec and Hummingbird's request handling, and
/// serves the event stream answered on it (`EventStream` attaches for the life of one stream):
/// - the stream's events: each is written from here, straight down the pipeline (`writeBody`), or, while the
///   connection is unwritable, once it is writable again (`writeBodyWhenWritable`). The model's events are
///   flushed as they are written; the producer's own (`session_start`, `iteration_start`, tool events,
///   `complete`) once the work in hand on the event loop is done (`flushSoon`), so the events of one moment (the
///   head, `session_start` and `iteration_start` before a model call) reach the client in one packet, after the
///   model's request went out;
/// - hang-up: when the client closes its side, or the connection ends or fails, it tells the stream at once, on
///   the event loop (the stream then cancels its producer: the upstream call and tools stop);
/// - keepalives: while a stream is attached, a comment goes out whenever nothing was written for the interval;
///   it goes between body parts, and each SSE message is one body part, so it never splits a message;
/// - write deadline: a connection that stays unwritable (its client reads nothing) for `writeTimeout` is
///   closed, which ends its stream like a hang-up. Meanwhile memory stays bounded: the stream's writes wait
///   while the connection is unwritable, and the upstream is not read either.
///
/// - held heads: a response marked with `holdHeadField` (every chat stream) has its head held back until its
///   body's first byte, or until the marked wait runs out: a stream's head goes out with its first event, in one
///   packet; a compatible endpoint's waits for the model's first token, and until then a failure can answer with
///   a status and a body of its own instead (`answerInstead`), as an SDK expects an error before the first token.
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

    /// Marks a response whose head waits for its body's first byte; the value is the longest wait in
    /// milliseconds, `0` for no limit (an answer that is not streamed). Never sent: the head goes out without it.
    static let holdHeadField = HTTPField.Name("X-Switchboard-Hold-Head")!

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
    /// A response head held back until the first body byte (see `holdHeadField`), and the timer that lets it go.
    private var heldHead: HTTPResponse?
    private var headTimer: Scheduled<Void>?
    /// A flush is due once the event loop's work in hand is done (`flushSoon`).
    private var flushDue = false

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

    /// Writes one body part (one whole SSE message), after `canWriteBody` said it goes out at once, and flushes
    /// it now, or with `flushNow: false` once the event loop's work in hand is done (`flushSoon`). The part goes
    /// straight down the pipeline from here, with no async writer between the stream and the connection: the
    /// response's head was written before the stream's first event (Hummingbird writes it before it calls the
    /// body; a held head goes out with the first part), and its end goes out after the last.
    func writeBody(_ buffer: ByteBuffer, flushNow: Bool = true) {
        guard let context else { return }
        releaseHead(context, flush: false)
        if flushNow {
            context.writeAndFlush(wrapOutboundOut(.body(buffer)), promise: nil)
        } else {
            context.write(wrapOutboundOut(.body(buffer)), promise: nil)
            flushSoon(context)
        }
        lastWrite = .now()
    }

    /// Flushes what was written, once the event loop has run the work in hand (the producer's job, and what it
    /// set going, such as a model call's request): one flush for the events of one moment.
    private func flushSoon(_ context: ChannelHandlerContext) {
        guard !flushDue else { return }
        flushDue = true
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let handler = loopBound.value
            guard handler.flushDue else { return }
            handler.flushDue = false
            handler.context?.flush()
        }
    }

    /// Writes `buffer` once the connection is writable; fails when the connection ends first.
    func writeBodyWhenWritable(_ buffer: ByteBuffer, eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        do {
            if try canWriteBody() {
                writeBody(buffer, flushNow: false)
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

    /// Answers with `answer` instead of the held head and the stream it was to start: `false` when no head is
    /// held (the stream's first byte went out, so its client hears the failure in the stream).
    func answerInstead(_ answer: ErrorAnswer) -> Bool {
        guard let context, let held = heldHead else { return false }
        heldHead = nil
        headTimer?.cancel()
        headTimer = nil
        var fields = held.headerFields
        fields[.contentType] = "application/json"
        fields[.contentLength] = String(answer.body.count)
        fields[.cacheControl] = nil
        if let seconds = answer.retryAfter { fields[.retryAfter] = String(seconds) }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .init(code: answer.status), headerFields: fields))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.body(ByteBuffer(bytes: answer.body))), promise: nil)
        inBody = true
        return true
    }

    /// Lets a held head go (before the first body byte, at the end, or when its wait ran out).
    private func releaseHead(_ context: ChannelHandlerContext, flush: Bool) {
        guard let head = heldHead else { return }
        heldHead = nil
        headTimer?.cancel()
        headTimer = nil
        inBody = true
        if flush {
            context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
        } else {
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        }
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            if let wait = head.headerFields[Self.holdHeadField] {
                head.headerFields[Self.holdHeadField] = nil
                heldHead = head
                inBody = false
                if let milliseconds = Int64(wait), milliseconds > 0 {
                    let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
                    let contextBound = NIOLoopBound(context, eventLoop: context.eventLoop)
                    headTimer = context.eventLoop.scheduleTask(in: .milliseconds(milliseconds)) {
                        loopBound.value.releaseHead(contextBound.value, flush: true)
                    }
                }
                promise?.succeed(())
                return
            }
            inBody = head.status.kind != .informational
        case .body:
            releaseHead(context, flush: false)
            if stream != nil { lastWrite = .now() }
        case .end:
            releaseHead(context, flush: false)
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
        headTimer?.cancel()
        headTimer = nil
        keepaliveTimer?.cancel()
        keepaliveTimer = nil
        writeDeadline?.cancel()
        writeDeadline = nil
    }
}
