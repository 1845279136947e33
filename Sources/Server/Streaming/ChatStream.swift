import AsyncAlgorithms
import ChatCore
import ChatPipeline
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// What travels from the pipeline and the keepalive timer to the one task that writes the response.
private enum Outgoing: Sendable {
    case event(StreamEvent)
    case keepalive
}

/// The SSE response of `POST /mcp/chat/stream`.
///
/// The head and `session_start` go out at once. The pipeline runs in a child task and hands each event over a
/// rendezvous channel (no queue: it waits until the event is written); a second child sends keepalive comments.
/// The writer encodes each event once and awaits the write. If the client goes away, the whole group is
/// cancelled: the upstream request, running tools and the keepalive stop with it.
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
        request: Request, chat: ChatRequest, loop: AgentLoop<Model>, keepalive: Duration, logger: Logger,
        metrics: ServerMetrics, extraHeaders: HTTPFields = [:]
    ) -> Response {
        var headers = headers
        headers.append(contentsOf: extraHeaders)
        let sessionId = UUID().uuidString.lowercased()
        var logger = logger
        logger[metadataKey: "session"] = "\(sessionId)"
        return Response(status: .ok, headers: headers, body: ResponseBody { [logger, metrics] writer in
            let clock = ContinuousClock()
            let started = clock.now
            var events = 0
            var last = "none"
            var errorCode: String?
            metrics.streamOpened()
            do {
                try await request.body.consumeWithCancellationOnInboundClose { _ in
                    let channel = AsyncChannel<Outgoing>()
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            defer { channel.finish() }
                            try await loop.run(chat, sessionId: sessionId) { event in
                                await channel.send(.event(event))
                            }
                        }
                        group.addTask {
                            while true {
                                do { try await Task.sleep(for: keepalive) } catch { return }
                                await channel.send(.keepalive)
                            }
                        }
                        var encoder = SSEEncoder()
                        for await item in channel {
                            switch item {
                            case .event(let event):
                                try await writer.write(ByteBuffer(bytes: encoder.encode(event)))
                                events += 1
                                last = event.type
                                if case .error(let error) = event { errorCode = error.code }
                            case .keepalive:
                                try await writer.write(ByteBuffer(bytes: SSEEncoder.keepalive))
                            }
                        }
                        group.cancelAll()
                        try await group.waitForAll()
                    }
                }
                try await writer.finish(nil)
                let elapsed = clock.now - started
                metrics.streamClosed(outcome: errorCode == nil ? "complete" : "error", errorCode: errorCode,
                                     events: events, duration: elapsed)
                logger.info("stream finished", metadata: [
                    "events": "\(events)", "last": "\(last)", "ms": "\(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)",
                ])
            } catch {
                // The client left (or the connection failed): everything under it was cancelled.
                metrics.streamClosed(outcome: "client_gone", errorCode: nil, events: events, duration: clock.now - started)
                logger.info("stream ended early: client went away", metadata: ["events": "\(events)", "last": "\(last)"])
            }
        })
    }
}
