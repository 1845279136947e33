import ChatCore
import ChatPipeline
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// The SSE response of `POST /mcp/chat/stream`.
///
/// The head and `session_start` go out at once. The pipeline runs in the response's own task and writes each
/// event itself: one JSON encoding and one awaited write, no hand-over to another task (no queue either: the
/// pipeline waits until the event is written). A child task sends keepalive comments; an async mutex keeps
/// its writes and the pipeline's whole and in order. If the client goes away, the whole group is cancelled:
/// the upstream request, running tools and the keepalive stop with it.
enum ChatStream {
    static let headers: HTTPFields = {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-cache, no-transform"
        headers[.connection] = "keep-alive"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        return headers
    }()

    static func response<Model: LanguageModel>(
        channel: any Channel, chat: ChatRequest, loop: AgentLoop<Model>, keepalive: Duration, shutdownGrace: Duration = .seconds(25),
        logger: Logger, metrics: ServerMetrics, ticket: StreamTicket? = nil, extraHeaders: HTTPFields = [:]
    ) -> Response {
        var headers = headers
        headers.append(contentsOf: extraHeaders)
        let sessionId = UUID().uuidString.lowercased()
        var logger = logger
        logger[metadataKey: "session"] = "\(sessionId)"
        return Response(status: .ok, headers: headers, body: ResponseBody { [logger, metrics] writer in
            let clock = ContinuousClock()
            let started = clock.now
            let tally = StreamTally()
            metrics.streamOpened()
            do {
                let shared = SharedBodyWriter(writer)
                // A client that goes away cancels this task: the group, the upstream call and tools stop with it.
                try await channel.cancellingOnInboundClose {
                    try await withThrowingTaskGroup(of: Ending.self) { group in
                        // The pipeline writes each event itself: one encoding, one awaited write.
                        group.addTask {
                            var encoder = SSEEncoder(accumulated: chat.accumulated)
                            try await loop.run(chat, sessionId: sessionId) { event in
                                try await shared.write(ByteBuffer(bytes: encoder.encode(event)))
                                tally.count(event)
                            }
                            // Nothing follows the last event, not even a keepalive that was waiting for its turn.
                            await shared.close()
                            return .finished
                        }
                        group.addTask {
                            while true {
                                do { try await Task.sleep(for: keepalive) } catch { return .stopped }
                                try await shared.write(ByteBuffer(bytes: SSEEncoder.keepalive), unlessClosed: true)
                            }
                        }
                        // When the server begins to shut down (SIGTERM), the stream has its grace period to finish.
                        group.addTask {
                            do {
                                try await gracefulShutdown()
                                try await Task.sleep(for: shutdownGrace)
                            } catch {
                                return .stopped
                            }
                            return .shutdown
                        }
                        var ending = Ending.stopped
                        while let next = try await group.next() {
                            if next != .stopped {
                                ending = next
                                break
                            }
                        }
                        group.cancelAll()
                        guard ending == .shutdown else { return }
                        // Out of time: the pipeline stops (model call and tools cancelled), and the client hears why.
                        while true {
                            do { if try await group.next() == nil { break } } catch { continue }
                        }
                        let error = StreamEvent.error(StreamError(
                            code: .serverShutdown, message: "The server is shutting down; send the chat again.", retryable: true))
                        var encoder = SSEEncoder(accumulated: false, firstId: tally.events + 1)
                        try await shared.write(ByteBuffer(bytes: encoder.encode(error)))
                        tally.count(error)
                    }
                }
                try Task.checkCancellation()
                // Book the stream before its body ends, so a client that sends its next request the moment this
                // one ends already meets the spent budget, the counted metrics and the log line.
                let elapsed = clock.now - started
                metrics.streamClosed(outcome: tally.errorCode == nil ? .complete : .error, errorCode: tally.errorCode,
                                     events: tally.events, duration: elapsed)
                if let usage = tally.usage { ticket?.spent(usage) }
                logger.info("stream finished", metadata: [
                    "events": "\(tally.events)", "last": "\(tally.last)",
                    "ms": "\(elapsed.inMilliseconds)",
                ])
                try await writer.finish(nil)
            } catch {
                // The client left (or the connection failed): everything under it was cancelled.
                metrics.streamClosed(outcome: .clientGone, errorCode: nil, events: tally.events, duration: clock.now - started)
                logger.info("stream ended early: client went away", metadata: ["events": "\(tally.events)", "last": "\(tally.last)"])
            }
        })
    }
}

/// How one of a stream's tasks ended.
private enum Ending: Sendable {
    /// The pipeline sent its last event.
    case finished
    /// The grace period after the start of a shutdown ran out.
    case shutdown
    /// A helper task (keepalive, shutdown watch) stopped because the stream is ending anyway.
    case stopped
}

/// What a stream sent, for its log line and metrics. Written only by the pipeline's task and read after it
/// has finished, so it needs no lock.
private final class StreamTally: @unchecked Sendable {
    var events = 0
    var last = "none"
    var errorCode: StreamErrorCode?
    /// The session's tokens, from its `complete` event.
    var usage: Usage?

    func count(_ event: StreamEvent) {
        events += 1
        last = event.type
        switch event {
        case .error(let error): errorCode = error.code
        case .complete(let completion): usage = completion.usage
        default: break
        }
    }
}

/// The response body's writer, shared by the pipeline and the keepalive timer. Writes are serialized by an
/// async mutex, so each SSE message goes out whole; uncontended (nearly always), taking it does not suspend.
private final class SharedBodyWriter: @unchecked Sendable {
    // Hummingbird's body writers are stateless handles on the connection's outbound writer, so this copy
    // writes to the same response; the mutex makes the exclusive access the type asks for.
    private var writer: any ResponseBodyWriter
    private var closed = false
    private let mutex = AsyncMutex()

    init(_ writer: any ResponseBodyWriter) {
        self.writer = writer
    }

    /// Writes `buffer`; with `unlessClosed`, not after `close()`.
    func write(_ buffer: ByteBuffer, unlessClosed: Bool = false) async throws {
        await mutex.lock()
        defer { mutex.unlock() }
        if unlessClosed, closed { return }
        try await writer.write(buffer)
    }

    /// Ends the writes made with `unlessClosed`.
    func close() async {
        await mutex.lock()
        closed = true
        mutex.unlock()
    }
}
