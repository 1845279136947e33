import ChatCore
import NIOCore
import NIOHTTP1
import Synchronization

/// One model call on the wire, read where it arrives: the call's connection (`UpstreamConnection`) hands each
/// part of the answer to this reader on its event loop, and each part is decoded, accumulated and its events
/// handed to the sink's `takeNow` right there, with no task woken per event. The calling task
/// (`StreamingHTTP.attempt`) waits in `next()` for what only it can do: deliver events `takeNow` did not take (the
/// connection's reads are held meanwhile), and take the end, the refusal or the failure.
///
/// The reader also keeps the call's clocks: no answer's head within the first-byte timeout, or a silence of the
/// idle timeout after it, fails the call. A reused connection that fails before any answer (the server closed it
/// while it was idle) is replaced by a new one and the request sent once more.
///
/// Its state is touched on the event loop only, and by the calling task after the call ended (`finish`); the
/// hand-over to the task goes through a lock.
final class TurnReader<Accumulator: TurnAccumulating, Sink: EventSink<ModelStreamEvent>>: UpstreamExchange, @unchecked Sendable {
    /// Who caused a failure: our reading (a protocol error, a delivery that failed), or the transport.
    enum Cause: Sendable {
        case ours
        /// `headSeen`: the answer's head had arrived.
        case transport(headSeen: Bool)
    }

    /// What the calling task is told, in order.
    enum Step: Sendable {
        /// Events to deliver through the sink's `take`; then `delivered` lets the upstream be read on.
        case events([ModelStreamEvent], delivered: EventLoopPromise<Void>)
        /// The message is whole (or the stream ended: `finish` says whether it was whole).
        case end
        /// A non-200 answer and its body (`nil` past 64 KiB or when it could not be read).
        case refused(HTTPResponseHead, ByteBuffer?)
        case failed(any Error, Cause)
    }

    private struct Mailbox {
        var steps: [Step] = []
        var waiter: CheckedContinuation<Step, Never>?
    }

    /// What the connection said while events waited for the task, handled in order once they are delivered.
    private enum Held {
        case part(HTTPClientResponsePart)
        case failure(any Error)
    }

    private static var refusalLimit: Int { 64 << 10 }

    let loop: any EventLoop
    private let connections: UpstreamConnections
    private let request: UpstreamRequest
    private let sink: Sink
    private let firstByte: TimeAmount
    /// The longest silence between parts of the answer.
    private let idle: TimeAmount
    /// The overall deadline, on NIO's clock: a part is timed with the one clock read that stamps it.
    private let deadline: NIODeadline
    private let overallTimeout: StreamError
    private let endGrace: TimeAmount
    private let mailbox = Mutex(Mailbox())

    // On the event loop.
    private var connection: UpstreamConnection?
    private var head: HTTPResponseHead?
    private var requestId: String?
    private var refusalBody: ByteBuffer?
    private var refusalTooLong = false
    private var decoder = SSEDecoder()
    private var accumulator: Accumulator
    private var pending: [ModelStreamEvent] = []
    /// Nothing more goes to the task: the message is whole, or the call failed.
    private var done = false {
        didSet { if done { idleTimer?.cancel() } }
    }
    /// The answer's end arrived (its connection went back to the idle list or closed).
    private var answerEnded = false
    /// Events went to the task and await delivery: the connection's reads are held, what it still says is held.
    private var awaitingDelivery = false
    private var held: [Held] = []
    /// The request went once more on a new connection after a reused one failed before answering.
    private var resent = false
    /// When a part of the answer last arrived, and the timer that checks the silence since. The timer is set
    /// once per `idle` interval, not per part: a part only moves `lastRead`.
    private var lastRead = NIODeadline.now()
    /// When the answer's first text or tool call was read (read by the caller once the turn ended).
    private(set) var firstEventAt: NIODeadline?
    private var idleTimer: Scheduled<Void>?
    private var firstByteTimer: Scheduled<Void>?
    /// Closes the connection when a whole message's answer does not end within `endGrace`.
    private var graceTimer: Scheduled<Void>?

    init(request: UpstreamRequest, on loop: any EventLoop, connections: UpstreamConnections, accumulator: Accumulator,
         sink: Sink, firstByte: TimeAmount, idle: TimeAmount, deadline: ContinuousClock.Instant, overallTimeout: StreamError,
         endGrace: TimeAmount) {
        self.request = request
        self.loop = loop
        self.connections = connections
        self.accumulator = accumulator
        self.sink = sink
        self.firstByte = firstByte
        self.idle = idle
        self.deadline = .now() + TimeAmount(deadline - .now)
        self.overallTimeout = overallTimeout
        self.endGrace = endGrace
    }

    // MARK: The calling task's side

    /// Sends the request: at once when called on the reader's loop, else by a hop to it.
    func start() {
        onLoop { reader in
            reader.firstByteTimer = reader.loop.assumeIsolated().scheduleTask(in: reader.firstByte) {
                if reader.head == nil { reader.transportFailed(UpstreamTransportError.firstByteTimeout, mayResend: false) }
            }
            reader.send(fresh: false)
        }
    }

    /// The next step, waiting for it.
    func next() async -> Step {
        await withCheckedContinuation { continuation in
            let step: Step? = mailbox.withLock { mailbox in
                if mailbox.steps.isEmpty {
                    mailbox.waiter = continuation
                    return nil
                }
                return mailbox.steps.removeFirst()
            }
            if let step { continuation.resume(returning: step) }
        }
    }

    /// The finished turn, after `.end`; an error when the stream ended before the message was whole.
    func finish() throws(StreamError) -> ModelTurn {
        try accumulator.finish()
    }

    /// The task is done with the call. When the message was `whole`, the answer's end (next, from a well-behaved
    /// server) is left `endGrace` to arrive, so its connection goes back to the idle list instead of closing;
    /// otherwise the connection closes now (cancelled, failed, refused before its end).
    func release(whole: Bool) {
        onLoop { reader in
            reader.firstByteTimer?.cancel()
            reader.done = true
            guard !reader.answerEnded, let connection = reader.connection else { return }
            if whole {
                reader.graceTimer = reader.loop.assumeIsolated().scheduleTask(in: reader.endGrace) {
                    reader.connection?.close()
                    reader.connection = nil
                }
            } else {
                reader.connection = nil
                connection.close()
            }
        }
    }

    /// The caller was cancelled: the call ends now and its connection closes.
    func cancel() {
        onLoop { reader in
            reader.fail(CancellationError())
        }
    }

    private func onLoop(_ body: @escaping @Sendable (TurnReader) -> Void) {
        if loop.inEventLoop {
            body(self)
        } else {
            loop.execute { body(self) }
        }
    }

    private func post(_ step: Step) {
        let waiter = mailbox.withLock { mailbox in
            if let waiter = mailbox.waiter {
                mailbox.waiter = nil
                return Optional(waiter)
            }
            mailbox.steps.append(step)
            return nil
        }
        waiter?.resume(returning: step)
    }

    // MARK: The connection's side (on its event loop)

    private func send(fresh: Bool) {
        connections.connection(on: loop, fresh: fresh) { [self] result in
            switch result {
            case .success(let connection):
                guard !done else {
                    // Cancelled or timed out while connecting: the new connection is kept for the next call.
                    connection.finished(reusable: true)
                    return
                }
                self.connection = connection
                connection.send(request, for: self)
            case .failure(let error):
                transportFailed(error, mayResend: false)
            }
        }
    }

    func received(_ part: HTTPClientResponsePart) {
        guard !awaitingDelivery else {
            held.append(.part(part))
            return
        }
        handle(part)
    }

    func connectionFailed(_ error: any Error) {
        guard !awaitingDelivery else {
            held.append(.failure(error))
            return
        }
        transportFailed(error, mayResend: true)
    }

    private func handle(_ part: HTTPClientResponsePart) {
        switch part {
        case .head(let head):
            self.head = head
            firstByteTimer?.cancel()
            requestId = Redaction.requestId(head.headers.first(name: "request-id") ?? head.headers.first(name: "x-request-id"))
            lastRead = .now()
            if !done { watchSilence(until: lastRead + idle) }
        case .body(let buffer):
            body(buffer)
        case .end:
            answerEnded = true
            graceTimer?.cancel()
            let connection = self.connection
            self.connection = nil
            connection?.finished(reusable: head?.isKeepAlive ?? false)
            guard !done, let head else { return }
            done = true
            post(head.status == .ok ? .end : .refused(head, refusalTooLong ? nil : refusalBody ?? ByteBuffer()))
        }
    }

    /// Fails the call with the idle timeout once the answer is silent for `idle`.
    private func watchSilence(until deadline: NIODeadline) {
        idleTimer = loop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            guard !done else { return }
            let due = lastRead + idle
            if NIODeadline.now() >= due {
                transportFailed(UpstreamTransportError.idleTimeout, mayResend: false)
            } else {
                watchSilence(until: due)
            }
        }
    }

    private func body(_ buffer: ByteBuffer) {
        guard !done, let head else { return }
        lastRead = .now()
        guard head.status == .ok else {
            collectRefusal(buffer)
            return
        }
        var decodeError: StreamError?
        do {
            try buffer.withUnsafeReadableBytes { bytes in
                try decoder.feed(bytes) { event in
                    guard decodeError == nil else { return }
                    do throws(StreamError) {
                        try accumulator.handle(event) { pending.append($0) }
                    } catch {
                        decodeError = error
                    }
                }
            }
        } catch {
            pending.removeAll()
            fail(StreamError(code: .upstreamProtocolError, message: "The model service sent a line or an event over 4 MiB.", retryable: false))
            return
        }
        if firstEventAt == nil, !pending.isEmpty { firstEventAt = lastRead }
        // What arrived goes out first, errors included.
        var taken = 0
        do {
            while taken < pending.count, try sink.takeNow(pending[taken]) { taken += 1 }
        } catch {
            pending.removeAll()
            fail(error)
            return
        }
        if taken < pending.count {
            let rest = Array(pending[taken...])
            pending.removeAll(keepingCapacity: true)
            awaitingDelivery = true
            connection?.holdReads()
            let delivered = loop.makePromise(of: Void.self)
            post(.events(rest, delivered: delivered))
            delivered.futureResult.assumeIsolated().whenComplete { [self] result in
                awaitingDelivery = false
                switch result {
                case .success:
                    afterEvents(decodeError: decodeError)
                case .failure(let error):
                    fail(error)
                }
                // What the connection said meanwhile, in order, until events wait again.
                while !awaitingDelivery, !held.isEmpty {
                    switch held.removeFirst() {
                    case .part(let part): handle(part)
                    case .failure(let error): transportFailed(error, mayResend: true)
                    }
                }
                if !awaitingDelivery { connection?.releaseReads() }
            }
            return
        }
        pending.removeAll(keepingCapacity: true)
        afterEvents(decodeError: decodeError)
    }

    /// After a part's events went out: its decoding error, the message's end, the overall deadline.
    private func afterEvents(decodeError: StreamError?) {
        guard !done else { return }
        if var error = decodeError {
            if let requestId { error.message += " (request \(requestId))" }
            fail(error)
            return
        }
        if accumulator.isComplete {
            done = true
            post(.end)
        } else if lastRead > deadline {
            fail(overallTimeout)
        }
    }

    /// The transport failed: the connection (`mayResend`: a reused one that failed before any answer, replaced
    /// once by a new one), a connection that could not be made, or one of the call's timers.
    private func transportFailed(_ error: any Error, mayResend: Bool) {
        let connection = self.connection
        self.connection = nil
        connection?.close()
        guard !done else { return }
        // Sent again at once only when the server provably never had the request (it was not written whole): a
        // model call is not idempotent, and one that reached the server may be billed.
        if mayResend, head == nil, !resent, let connection, connection.calls > 1, !connection.requestWritten {
            resent = true
            send(fresh: true)
            return
        }
        done = true
        if let head, head.status != .ok {
            post(.refused(head, nil))
        } else {
            post(.failed(error, .transport(headSeen: head != nil)))
        }
    }

    /// Ends the call with our `error` and closes its connection: the task hears it.
    private func fail(_ error: any Error) {
        if let connection {
            self.connection = nil
            connection.close()
        }
        guard !done else { return }
        done = true
        post(.failed(error, .ours))
    }

    /// Keeps a refusal's body up to `refusalLimit`; past it the call is refused at once without it and the
    /// connection closes, so a body that never ends cannot hold the call to its overall deadline.
    private func collectRefusal(_ buffer: ByteBuffer) {
        guard !refusalTooLong, let head else { return }
        var buffer = buffer
        if (refusalBody?.readableBytes ?? 0) + buffer.readableBytes > Self.refusalLimit {
            refusalTooLong = true
            refusalBody = nil
            let connection = self.connection
            self.connection = nil
            connection?.close()
            done = true
            post(.refused(head, nil))
        } else if refusalBody == nil {
            refusalBody = buffer
        } else {
            refusalBody!.writeBuffer(&buffer)
        }
    }
}
