import ChatCore
import Hummingbird
import NIOCore
import ServiceLifecycle
import Synchronization

/// The body of one Server-Sent Events response: it owns the response's writer and everything that can end the
/// stream, on documented APIs only.
///
/// - `run` starts the producer (the agentic loop) in a child task on the connection's event loop and hands it
///   this stream to write to: each event is encoded and written by the producer itself, no queue and no
///   hand-over. The model's text and tool-call events are written where the upstream is read (`writeNow`, on the
///   same loop, no suspension); the rest, and everything while the connection is full, by the producer's task
///   (`write`, which waits for the connection).
/// - Writes go down the connection's pipeline from its `StreamConnectionHandler`, not through the response's
///   async writer: the head was written before (Hummingbird writes it before it calls the body; the handler
///   sends a held head with the first event) and the end goes out after, through the writer (`finish`).
/// - Hang-up, keepalives and the write deadline are served on the event loop by that handler, which the producer
///   attaches this stream to when it starts there (no hop of its own) and detaches from when it ends: a hang-up is told the moment the event loop sees it, keepalives go between
///   whole messages, and a client that reads nothing is dropped.
/// - Shutdown: a graceful-shutdown handler gives the stream `shutdownGrace` to finish, then ends it.
/// - Deadlines inside the producer: the stream's `deadlines`, handed down with the producer's sink, let the
///   model client have the stream stop the producer when a call runs past its overall deadline, even while the
///   upstream sends nothing.
///
/// Whatever ends the stream first (the producer finishing, the hang-up, the shutdown timer, the response task
/// being cancelled) is told once to a `StreamEndSignal` that the response's task awaits; unless the producer
/// finished, the response's task then cancels it, so the upstream request and tools stop with it.
///
/// The stream has one writer at a time, by construction: the producer (or the upstream's reader it waits on)
/// while `run` runs, the owner's task before and after. So its state is kept in this class without a lock.
final class EventStream: @unchecked Sendable {
    /// How a stream ended.
    enum Ending: Sendable, Equatable {
        /// The producer wrote its last event.
        case finished
        /// The client hung up, the connection failed or was dropped, or a write failed.
        case hungUp
        /// The producer was stopped, and this is the error to tell the client: the grace period after the start
        /// of a shutdown ran out (`server_shutdown`), or a deadline the producer armed through `deadlines`
        /// passed (a model call's `overall_timeout`).
        case stopped(StreamError)
    }

    /// What a stream stopped by a shutdown tells its client.
    static let shutdownError = StreamError(code: .serverShutdown, message: "The server is shutting down; send the chat again.",
                                           retryable: true)

    private var writer: (any ResponseBodyWriter)?
    /// The connection's handler, which the stream's events are written through (set by `run` before it
    /// starts the producer); without one, they go through `writer`.
    private var connection: NIOLoopBound<StreamConnectionHandler>?
    private let channel: any Channel
    private let keepalive: Duration
    private let shutdownGrace: Duration
    private let signal = StreamEndSignal()
    /// The producer's armed deadline, if any.
    private let deadline = Mutex<Scheduled<Void>?>(nil)

    /// Where a replaced head's status is told (`answerInstead`).
    private let sent: SentStatus?

    /// A stream writing to `writer` (the response body's writer, which this stream then owns) on `channel`.
    init(writer: any ResponseBodyWriter, channel: any Channel, keepalive: Duration, shutdownGrace: Duration, sent: SentStatus? = nil) {
        self.writer = writer
        self.channel = channel
        self.keepalive = keepalive
        self.shutdownGrace = shutdownGrace
        self.sent = sent
    }

    /// Writes `buffer` (one whole SSE message) and waits until the connection took it.
    ///
    /// On the connection's event loop (where the producer runs) a writable connection takes it at once, with no
    /// suspension: it goes down the pipeline from the connection's handler, flushed once the loop's work in hand
    /// is done (so the producer's events of one moment, and the model call it starts, go out together).
    /// Elsewhere, or while the connection is unwritable, the write hops to the loop and waits for it to be
    /// written.
    func write(_ buffer: ByteBuffer) async throws {
        guard writer != nil else { throw StreamFinished() }
        guard let connection else { return try await writer!.write(buffer) }
        let eventLoop = channel.eventLoop
        if eventLoop.inEventLoop, try connection.value.canWriteBody() {
            return connection.value.writeBody(buffer, flushNow: false)
        }
        try await eventLoop.flatSubmit { connection.value.writeBodyWhenWritable(buffer, eventLoop: eventLoop) }.get()
    }

    /// Writes the message `encode` makes at once, without suspending, if this runs on the connection's event
    /// loop and the connection takes it now (`encode` is called only then; an empty message is not written);
    /// `false` otherwise, and the caller then uses `write`.
    func writeNow(_ encode: () -> ByteBuffer) throws -> Bool {
        guard writer != nil else { throw StreamFinished() }
        guard let connection, channel.eventLoop.inEventLoop else { return false }
        let handler = connection.value
        guard try handler.canWriteBody() else { return false }
        let buffer = encode()
        if buffer.readableBytes > 0 { handler.writeBody(buffer) }
        return true
    }

    /// Answers with `answer` (a status and body of its own) instead of this stream, if its head is still held
    /// (see `StreamConnectionHandler.holdHeadField`); `false` when the stream's first byte went out already.
    func answerInstead(_ answer: ErrorAnswer) async throws -> Bool {
        guard writer != nil else { throw StreamFinished() }
        guard let connection else { return false }
        let replaced = try await channel.eventLoop.submit { connection.value.answerInstead(answer) }.get()
        if replaced { sent?.replaced(with: answer.status) }
        return replaced
    }

    /// Ends the response body; nothing can be written after it.
    func finish() async throws {
        guard let writer = writer.take() else { return }
        try await writer.finish(nil)
    }

    /// Stops the producer now; `run` ends `.stopped` with `error` (the caller writes it as the last event). A stream
    /// already ended is not changed: the first ending is kept.
    func stop(_ error: StreamError) {
        signal.fire(.stopped(error))
    }

    /// Runs `produce` until it finishes or the stream ends otherwise; how it ended.
    func run(_ produce: @escaping @Sendable (EventStream) async throws -> Void) async -> Ending {
        let signal = signal
        let ending = await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withTaskGroup(of: Void.self) { [channel] group in
                    group.addTask(executorPreference: EventLoopTaskExecutor(channel.eventLoop)) {
                        // The producer runs on the connection's loop: it attaches to the connection's handler there,
                        // with no hop of its own, before its first event, and detaches after its last.
                        self.attach()
                        defer { self.detach() }
                        do {
                            try await produce(self)
                            signal.fire(.finished)
                        } catch {
                            signal.fire(.hungUp)
                        }
                    }
                    let ending = await signal.wait()
                    if ending != .finished { group.cancelAll() }
                    await group.waitForAll()
                    return ending
                }
            } onCancel: {
                signal.fire(.hungUp)
            }
        } onGracefulShutdown: { [channel, shutdownGrace] in
            channel.eventLoop.scheduleTask(in: TimeAmount(shutdownGrace)) { signal.fire(.stopped(Self.shutdownError)) }
        }
        deadline.withLock { $0?.cancel() }
        return ending
    }

    /// The producer's deadlines: one armed at a time, on the connection's event loop; when it passes, the
    /// producer is stopped and `run` ends `.stopped` with its error.
    var deadlines: DeadlineKeeper {
        DeadlineKeeper(arm: { [self] limit, error in
            let signal = signal
            let timer = channel.eventLoop.scheduleTask(in: TimeAmount(limit)) { signal.fire(.stopped(error)) }
            deadline.withLock { $0?.cancel(); $0 = timer }
        }, disarm: { [self] in
            deadline.withLock { $0?.cancel(); $0 = nil }
        })
    }

    /// Attaches to the connection's handler; called by the producer, which runs on the connection's event loop.
    /// Without a handler (a connection not set up by `buildApplication`), hang-up is watched through the
    /// channel's close only and no keepalives are sent.
    private func attach() {
        channel.eventLoop.preconditionInEventLoop()
        let signal = signal
        guard let handler = try? channel.pipeline.syncOperations.handler(type: StreamConnectionHandler.self) else {
            channel.closeFuture.whenComplete { _ in signal.fire(.hungUp) }
            return
        }
        handler.attach(signal, keepalive: TimeAmount(keepalive))
        connection = NIOLoopBound(handler, eventLoop: channel.eventLoop)
    }

    /// Detaches from the connection's handler (no keepalive after this); by the producer, on the loop.
    private func detach() {
        connection?.value.detach(signal)
    }
}

/// A write after the stream's body ended.
struct StreamFinished: Error {}
