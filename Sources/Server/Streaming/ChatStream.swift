import ChatCore
import ChatPipeline
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Storage
import Tracing

/// The SSE response of `POST /mcp/chat/stream` (and of smart routing when it streams).
///
/// The head and `session_start` go out at once. The agentic loop runs as the `EventStream`'s producer and
/// writes each event itself: one JSON encoding and one write, no hand-over to another task and no queue. The
/// model's text and tool calls are written where the upstream is read, on the connection's event loop, when the
/// connection takes them at once; otherwise the loop's task writes them, waiting for the connection. The stream
/// ends when the loop does, when the client goes away (the upstream request and running tools are cancelled with
/// it), or when a shutdown's grace period runs out (the client gets a `server_shutdown` error event).
enum ChatStream {
    static let headers: HTTPFields = {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-cache, no-transform"
        headers[.connection] = "keep-alive"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        return headers
    }()

    /// The stream of `plan`, its loop running as the response's producer on `channel`.
    static func response<Model: LanguageModel>(_ plan: StreamPlan, loop: AgentLoop<Model>, channel: any Channel, logger: Logger,
                                               settings: StreamSettings) -> Response {
        response(plan, loop: loop, encoder: SSEEncoder(accumulated: plan.chat.accumulated), channel: channel, logger: logger,
                 settings: settings)
    }

    /// The stream of `plan` for the request of `context`: a replaced head's status is told to its metrics and span.
    static func response<Model: LanguageModel, Encoding: EventEncoding>(
        _ plan: StreamPlan, loop: AgentLoop<Model>, encoder: Encoding, context: SwitchboardRequestContext, settings: StreamSettings
    ) -> Response {
        var plan = plan
        plan.sent = context.sent
        return response(plan, loop: loop, encoder: encoder, channel: context.channel, logger: context.logger, settings: settings)
    }

    /// The stream of `plan` in the bytes `encoder` makes of its events (an SDK's dialect, or Switchboard's SSE).
    static func response<Model: LanguageModel, Encoding: EventEncoding>(
        _ plan: StreamPlan, loop: AgentLoop<Model>, encoder: Encoding, channel: any Channel, logger: Logger, settings: StreamSettings
    ) -> Response {
        var headers = headers
        headers[.contentType] = encoder.contentType
        headers[StreamConnectionHandler.holdHeadField] = String(plan.holdHead.inMilliseconds)
        headers.append(contentsOf: plan.extraHeaders)
        let sessionId = newSessionId(instance: settings.instance)
        var logger = logger
        logger[metadataKey: "session"] = "\(sessionId)"
        // The request's trace (its span is current here): the body runs after the handler returned, so it is
        // carried over for the model calls, tools and log lines of the stream.
        let trace = ServiceContext.current
        let traceId = ChatTracing.traceId(of: trace)
        if plan.chat.resumable, let sessions = settings.sessions {
            return resumable(plan, loop: loop, channel: channel, logger: logger, settings: settings, sessions: sessions, headers: headers,
                             sessionId: sessionId, trace: trace)
        }
        let chat = plan.chat, ticket = plan.ticket, routing = plan.routing, labels = plan.labels, sent = plan.sent
        let keepalive = settings.keepalive, shutdownGrace = settings.shutdownGrace, metrics = settings.metrics
        let recorder = settings.recorder, shadow = settings.shadow
        return Response(status: .ok, headers: headers, body: ResponseBody { [logger, metrics] writer in
            await ServiceContext.withValue(trace) {
                let clock = ContinuousClock()
                let started = clock.now
                let tally = StreamTally(labels: labels)
                metrics.streamOpened()
                let stream = EventStream(writer: writer, channel: channel, keepalive: keepalive, shutdownGrace: shutdownGrace, sent: sent)
                let sink = ConnectionSink(stream: stream, encoder: encoder, tally: tally, routing: routing)
                // A key revoked while the stream runs stops it: the client hears why.
                ticket?.onRevoked { [stream] error in stream.stop(error) }
                // The pipeline writes each event itself: one encoding, one write. The model's events are written where
                // the upstream is read, when that is the connection's event loop and the connection takes them at once.
                let ending = await stream.run { _ in
                    try await loop.run(chat, sessionId: sessionId, traceId: traceId, into: sink)
                }
                let book = StreamBook(sessionId: sessionId, started: started, metrics: metrics, ticket: ticket, recorder: recorder, shadow: shadow)
                // The client left (or the connection failed, or a write did): everything under the stream was cancelled.
                func clientWentAway() async {
                    await book.close(tally, .clientGone, elapsed: clock.now - started)
                    logger.info("stream ended early: client went away", metadata: ["events": "\(tally.events)", "last": "\(tally.last)"])
                }
                do {
                    switch ending {
                    case .hungUp:
                        return await clientWentAway()
                    case .finished:
                        break
                    case .stopped(let reason):
                        // Out of time (the server's grace, or a model call's deadline while the upstream was silent): the
                        // pipeline was stopped, model call and tools cancelled; the client hears why.
                        try await sink.take(.error(reason))
                    }
                    // Book the stream before its body ends, so a client that sends its next request the moment this
                    // one ends already meets the spent budget, the counted metrics and the log line.
                    let elapsed = clock.now - started
                    await book.close(tally, tally.errorCode == nil ? .complete : .error, elapsed: elapsed)
                    var metadata: Logger.Metadata = ["events": "\(tally.events)", "last": "\(tally.last)", "ms": "\(elapsed.inMilliseconds)"]
                    if let cost = tally.usage?.costUSD { metadata["cost_usd"] = "\(cost)" }
                    logger.info("stream finished", metadata: metadata)
                    try await stream.finish()
                } catch {
                    await clientWentAway()
                }
            }
        })
    }
}

extension ChatStream {
    /// A resumable stream: the agentic loop writes into a `ResumableSession` and this connection reads it like
    /// any that resumes it later. When the client goes away the loop goes on, its events kept, for the resume
    /// grace; `GET /mcp/chat/stream/{sessionId}` with `Last-Event-ID` picks the stream up again. The loop runs in
    /// this response's task, so nothing outlives the request's task tree.
    static func resumable<Model: LanguageModel>(
        _ plan: StreamPlan, loop: AgentLoop<Model>, channel: any Channel, logger: Logger, settings: StreamSettings,
        sessions: ResumableSessions, headers: HTTPFields, sessionId: String, trace: ServiceContext?
    ) -> Response {
        let traceId = ChatTracing.traceId(of: trace)
        let chat = plan.chat, ticket = plan.ticket, routing = plan.routing, labels = plan.labels, owner = plan.owner
        let keepalive = settings.keepalive, shutdownGrace = settings.shutdownGrace, metrics = settings.metrics
        let recorder = settings.recorder, shadow = settings.shadow
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            await ServiceContext.withValue(trace) {
                let clock = ContinuousClock()
                let started = clock.now
                let tally = StreamTally(labels: labels)
                metrics.streamOpened()
                let session = sessions.open(id: sessionId, owner: owner, accumulated: chat.accumulated, eventLoop: channel.eventLoop)
                ticket?.onRevoked { [session] error in session.end.fire(.stopped(error)) }
                let stream = EventStream(writer: writer, channel: channel, keepalive: keepalive, shutdownGrace: shutdownGrace)
                let ending = await withTaskGroup(of: Void.self) { connection -> EventStream.Ending in
                    // This connection: the session's first subscriber.
                    connection.addTask { _ = await subscribe(stream, to: session, after: 0) }
                    let ending = await withGracefulShutdownHandler {
                        await withTaskGroup(of: Void.self) { producer -> EventStream.Ending in
                            producer.addTask {
                                do {
                                    try await loop.run(chat, sessionId: sessionId, traceId: traceId,
                                                       into: SessionSink(session: session, tally: tally, routing: routing))
                                    session.end.fire(.finished)
                                } catch let error as StreamError where error.code == .resumeBufferFull {
                                    session.end.fire(.stopped(error))
                                } catch {
                                    session.end.fire(.hungUp)
                                }
                            }
                            let ending = await session.end.wait()
                            if ending != .finished { producer.cancelAll() }
                            await producer.waitForAll()
                            return ending
                        }
                    } onGracefulShutdown: {
                        channel.eventLoop.scheduleTask(in: TimeAmount(shutdownGrace)) { session.end.fire(.stopped(EventStream.shutdownError)) }
                    }
                    // A stopped stream's last event says why, for whoever reads it now or resumes it.
                    if case .stopped(let reason) = ending {
                        var encoder = SSEEncoder(accumulated: false, firstId: session.count + 1)
                        try? session.append(ByteBuffer(bytes: encoder.encode(.error(reason))), force: true)
                        tally.count(.error(reason))
                    }
                    session.finish()
                    await connection.waitForAll()
                    return ending
                }
                let elapsed = clock.now - started
                let outcome: StreamOutcome = ending == .hungUp ? .clientGone : tally.errorCode == nil ? .complete : .error
                await StreamBook(sessionId: sessionId, started: started, metrics: metrics, ticket: ticket, recorder: recorder, shadow: shadow)
                    .close(tally, outcome, elapsed: elapsed)
                logger.info(ending == .hungUp ? "resumable stream ended: nobody came back for it" : "stream finished", metadata: [
                    "events": "\(tally.events)", "last": "\(tally.last)", "ms": "\(elapsed.inMilliseconds)", "resumable": "true",
                ])
            }
        })
    }

    /// Writes `session`'s events after the first `lastId` to `stream`, then live ones, until the session finished
    /// and everything was written (the response then ends), the client went away, another connection took the
    /// session over, or a shutdown's grace ran out (the client is told `server_shutdown`).
    static func subscribe(_ stream: EventStream, to session: ResumableSession, after lastId: Int) async -> EventStream.Ending {
        let generation = session.attach()
        let ending = await stream.run { stream in
            var next = lastId
            var accumulator: SSEAccumulator?
            if session.accumulated {
                accumulator = SSEAccumulator()
                for bytes in session.events(upTo: lastId) { accumulator?.add(bytes.readableBytesView) }
            }
            while true {
                let batch = await session.next(after: next, generation: generation)
                for bytes in batch.events {
                    if accumulator != nil {
                        try await stream.write(ByteBuffer(bytes: accumulator!.rewrite(Array(bytes.readableBytesView))))
                    } else {
                        try await stream.write(bytes)
                    }
                }
                next += batch.events.count
                if batch.done { return }
            }
        }
        session.detach(generation)
        switch ending {
        case .finished:
            try? await stream.finish()
        case .hungUp:
            break
        case .stopped(let reason):
            var encoder = SSEEncoder(accumulated: false, firstId: session.count + 1)
            try? await stream.write(ByteBuffer(bytes: encoder.encode(.error(reason))))
            try? await stream.finish()
            session.end.fire(.stopped(reason))
        }
        return ending
    }

    /// `GET /mcp/chat/stream/{sessionId}`: the events after `Last-Event-ID` (all of them without it), then the
    /// live ones.
    static func resume(_ session: ResumableSession, after lastId: Int, channel: any Channel, keepalive: Duration,
                       shutdownGrace: Duration) -> Response {
        Response(status: .ok, headers: headers, body: ResponseBody { writer in
            let stream = EventStream(writer: writer, channel: channel, keepalive: keepalive, shutdownGrace: shutdownGrace)
            _ = await subscribe(stream, to: session, after: lastId)
        })
    }

    /// `INSTANCE.UUID`: the instance that holds the stream, so a load balancer can send a resume to it
    /// (`scripts/cluster.sh`'s nginx reads it from the path); a bare UUID without an instance.
    static func newSessionId(instance: String?) -> String {
        let id = RandomID.uuid()
        guard let instance, !instance.isEmpty else { return id }
        return instance + "." + id
    }

    /// Advice as a stream, for a frontend that only reads SSE: `session_start`, `routing` (with the message),
    /// `complete` (`stopReason: advise`, no model called).
    static func advice(_ decision: RoutingDecision, extraHeaders: HTTPFields, instance: String? = nil) -> Response {
        var headers = headers
        headers.append(contentsOf: extraHeaders)
        var encoder = SSEEncoder(accumulated: false)
        var body = ByteBuffer()
        for event: StreamEvent in [.sessionStart(sessionId: newSessionId(instance: instance)), .routing(decision),
                                   .complete(Completion(iterations: 0, stopReason: .advise, totalTimeMs: 0, usage: Usage()))] {
            body.writeBytes(encoder.encode(event))
        }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: body))
    }
}

/// What every stream of a server shares: its timings, where streams are booked, the resumable sessions, and
/// the instance that names their session ids.
struct StreamSettings: Sendable {
    var keepalive: Duration
    var shutdownGrace: Duration = .seconds(25)
    var metrics: ServerMetrics
    var recorder: StreamRecorder?
    var sessions: ResumableSessions?
    var instance: String?
    /// The candidate rules whose report hears how each stream went.
    var shadow: ShadowRules?
}

/// One chat's stream, as its endpoint checked and admitted it: the chat to run, its slot in the quotas, how it is
/// labelled and routed, and the key that may resume it.
struct StreamPlan: Sendable {
    var chat: ChatRequest
    var ticket: StreamTicket?
    var labels: StreamLabels
    /// Smart routing's headers (level, route, provider, model).
    var extraHeaders: HTTPFields = [:]
    /// Smart routing's decision, sent after `session_start`.
    var routing: RoutingDecision?
    /// The key that opened it (`nil` without keys).
    var owner: String?
    /// How long the response's head may wait for the stream's first byte: `.zero`, no limit, so the head goes out
    /// with the first event (`session_start`, written the moment the body starts) in one packet; the compatible
    /// endpoints wait up to their head wait for the model's first token, so a failure before it is answered with
    /// an HTTP error.
    var holdHead: Duration = .zero
    /// Where the status is told when the held head is replaced by an error answer.
    var sent: SentStatus? = nil
}

/// What a stream is booked under for calibration and review: the level and route of smart routing (`nil` for
/// `POST /mcp/chat/stream`), the provider and model it starts on, what the rules made of it, who opened it, and
/// (with `--record-queries`) its last user text.
struct StreamLabels: Sendable {
    var level: String?
    var route: String?
    var provider: String
    var model: String
    var analysis: RecordedAnalysis?
    var owner: String?
    var queryText: String?
    /// The shadow rules' verdict on the chat, booked with the stream's cost and time when it ends.
    var shadow: ShadowRules.Verdict?
}
