import AsyncHTTPClient
import ChatCore
import NIOCore
import NIOHTTP1
import Synchronization

/// Reads one model call's answer where it arrives: AsyncHTTPClient calls this delegate on the connection's event
/// loop with each body part, and each part is decoded, accumulated and its events handed to the sink's `takeNow`
/// right there, with no task woken per event. The calling task (`StreamingHTTP.attempt`) waits in `next()` for
/// what only it can do: deliver events `takeNow` did not take (the upstream is not read meanwhile), and take the
/// end, the refusal or the failure.
///
/// The delegate's state is touched on the connection's event loop only, and by the calling task after the
/// request ended (`finish`); the hand-over to the task goes through a lock.
final class TurnReader<Accumulator: TurnAccumulating, Sink: EventSink<ModelStreamEvent>>: HTTPClientResponseDelegate, @unchecked Sendable {
    typealias Response = Void

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

    private static var refusalLimit: Int { 64 << 10 }

    private let sink: Sink
    /// The longest silence between parts of the answer.
    private let idle: TimeAmount
    /// The overall deadline, on NIO's clock: a part is timed with the one clock read that stamps it.
    private let deadline: NIODeadline
    private let overallTimeout: StreamError
    private let mailbox = Mutex(Mailbox())

    // On the event loop.
    private var head: HTTPResponseHead?
    /// Whether the answer's head arrived (read on the event loop by the first-byte timer).
    var hasHead: Bool { head != nil }
    private var requestId: String?
    private var refusalBody: ByteBuffer?
    private var refusalTooLong = false
    private var decoder = SSEDecoder()
    private var accumulator: Accumulator
    private var pending: [ModelStreamEvent] = []
    /// Nothing more is read: the message is whole, or the call failed.
    private var done = false {
        didSet { if done { idleTimer?.cancel() } }
    }
    /// When a part of the answer last arrived, and the timer that checks the silence since. The timer is set
    /// once per `idle` interval, not per part: a part only moves `lastRead`.
    private var lastRead = NIODeadline.now()
    /// When the answer's first text or tool call was read (read by the caller once the turn ended).
    private(set) var firstEventAt: NIODeadline?
    private var idleTimer: Scheduled<Void>?

    init(accumulator: Accumulator, sink: Sink, idle: TimeAmount, deadline: ContinuousClock.Instant,
         overallTimeout: StreamError) {
        self.accumulator = accumulator
        self.sink = sink
        self.idle = idle
        self.deadline = .now() + TimeAmount(deadline - .now)
        self.overallTimeout = overallTimeout
    }

    // MARK: The calling task's side

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

    // MARK: AsyncHTTPClient's side (on the connection's event loop)

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        self.head = head
        requestId = head.headers.first(name: "request-id") ?? head.headers.first(name: "x-request-id")
        lastRead = .now()
        watchSilence(task, until: lastRead + idle)
        return task.eventLoop.makeSucceededVoidFuture()
    }

    /// Fails the call with AsyncHTTPClient's read timeout once the answer is silent for `idle`.
    private func watchSilence(_ task: HTTPClient.Task<Void>, until deadline: NIODeadline) {
        let reader = NIOLoopBound(self, eventLoop: task.eventLoop)
        idleTimer = task.eventLoop.scheduleTask(deadline: deadline) {
            let reader = reader.value
            guard !reader.done else { return }
            let due = reader.lastRead + reader.idle
            if NIODeadline.now() >= due {
                task.fail(reason: HTTPClientError.readTimeout)
            } else {
                reader.watchSilence(task, until: due)
            }
        }
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        guard !done, let head else { return task.eventLoop.makeSucceededVoidFuture() }
        lastRead = .now()
        guard head.status == .ok else {
            collectRefusal(buffer)
            return task.eventLoop.makeSucceededVoidFuture()
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
            return fail(task, StreamError(code: .upstreamProtocolError, message: "The model service sent a line or an event over 4 MiB.",
                                          retryable: false))
        }
        if firstEventAt == nil, !pending.isEmpty { firstEventAt = lastRead }
        // What arrived goes out first, errors included.
        var taken = 0
        do {
            while taken < pending.count, try sink.takeNow(pending[taken]) { taken += 1 }
        } catch {
            pending.removeAll()
            return fail(task, error)
        }
        if taken < pending.count {
            let rest = Array(pending[taken...])
            pending.removeAll(keepingCapacity: true)
            let delivered = task.eventLoop.makePromise(of: Void.self)
            post(.events(rest, delivered: delivered))
            return delivered.futureResult.flatMap { [self, decodeError] in afterEvents(task, decodeError: decodeError) }
        }
        pending.removeAll(keepingCapacity: true)
        return afterEvents(task, decodeError: decodeError)
    }

    /// After a part's events went out: its decoding error, the message's end, the overall deadline.
    private func afterEvents(_ task: HTTPClient.Task<Void>, decodeError: StreamError?) -> EventLoopFuture<Void> {
        guard !done else { return task.eventLoop.makeSucceededVoidFuture() }
        if var error = decodeError {
            if let requestId { error.message += " (request \(requestId))" }
            return fail(task, error)
        }
        if accumulator.isComplete {
            done = true
            post(.end)
        } else if lastRead > deadline {
            return fail(task, overallTimeout)
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) {
        guard !done else { return }
        done = true
        if let head, head.status != .ok {
            post(.refused(head, nil))
        } else {
            post(.failed(error, .transport(headSeen: head != nil)))
        }
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {
        guard !done, let head else { return }
        done = true
        post(head.status == .ok ? .end : .refused(head, refusalTooLong ? nil : refusalBody ?? ByteBuffer()))
    }

    /// Ends the call with our `error`: the task hears it, and the failed future stops AsyncHTTPClient reading.
    private func fail(_ task: HTTPClient.Task<Void>, _ error: any Error) -> EventLoopFuture<Void> {
        if !done {
            done = true
            post(.failed(error, .ours))
        }
        return task.eventLoop.makeFailedFuture(error)
    }

    private func collectRefusal(_ buffer: ByteBuffer) {
        guard !refusalTooLong else { return }
        var buffer = buffer
        if (refusalBody?.readableBytes ?? 0) + buffer.readableBytes > Self.refusalLimit {
            refusalTooLong = true
            refusalBody = nil
        } else if refusalBody == nil {
            refusalBody = buffer
        } else {
            refusalBody!.writeBuffer(&buffer)
        }
    }
}
