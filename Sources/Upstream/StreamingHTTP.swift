import ChatCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// What a provider's stream format needs to build one turn from its server-sent events.
protocol TurnAccumulating: Sendable {
    /// Handles one event, telling `emit` what the pipeline should hear about.
    mutating func handle(_ event: ServerSentEvent, emit: (ModelStreamEvent) -> Void) throws(StreamError)
    /// The message is whole: what follows it is not waited for.
    var isComplete: Bool { get }
    /// The finished turn; an error when the stream ended before the message was whole.
    func finish() throws(StreamError) -> ModelTurn
}

/// The transport every provider shares: its connections (`UpstreamConnections`), one retry policy, one way of
/// reading a streamed turn (`TurnReader`), one meaning for each transport failure.
///
/// Before any byte of the stream, 408, 409, 429, 5xx and 529 answers and connection failures are tried again,
/// with exponential backoff that honours `retry-after`; after that, failures are `StreamError`s. Cancelling the
/// caller's task cancels the request. No redirect is followed, so a key in a header never reaches another host.
///
/// The HTTP/1.1 client is NIO's codec with a handler of ours (`UpstreamConnection`) rather than AsyncHTTPClient:
/// a model call is one request with a known body and a streamed answer to one host, and the general client's
/// request and pool machinery was the largest single cost of a short chat (Docs/BENCHMARKS.md, "Per request").
final class StreamingHTTP: Sendable {
    let timeouts: UpstreamTimeouts
    let retry: RetryPolicy
    /// The provider's connections, or why its base URL cannot have any.
    private let connections: Result<UpstreamConnections, StreamError>
    private let logger: Logger

    init(_ configuration: some UpstreamConfiguration, baseURL: String, logger: Logger) {
        timeouts = configuration.timeouts
        retry = configuration.retry
        self.logger = logger
        let timeouts = timeouts
        connections = Result { () throws(StreamError) in
            let endpoint = try UpstreamEndpoint(baseURL: baseURL)
            var tls: NIOSSLContext?
            if endpoint.tls {
                var settings = TLSConfiguration.makeClientConfiguration()
                settings.applicationProtocols = ["http/1.1"]
                if let caFile = configuration.caFile { settings.additionalTrustRoots = [.file(caFile)] }
                do {
                    tls = try NIOSSLContext(configuration: settings)
                } catch {
                    throw StreamError(code: .upstreamUnreachable, message: "Could not set up TLS for the model service (\(type(of: error))).",
                                      retryable: false)
                }
            }
            return UpstreamConnections(endpoint: endpoint, group: MultiThreadedEventLoopGroup.singleton, limit: configuration.maxConnections,
                                       connectTimeout: TimeAmount(timeouts.connect), idleTimeout: Self.poolIdleTimeout, tls: tls)
        }
    }

    /// Closes the idle connections; call once when the server stops.
    func shutdown() async {
        if case .success(let connections) = connections { await connections.shutdown() }
    }

    /// A streaming model call's request to `path` under the base URL's: `POST` with the provider's `headers` (its
    /// key among them), asking for an event stream. Built once per route; a call adds its body's length.
    func route(_ path: String, headers: [(String, String)]) -> Result<HTTPRequestHead, StreamError> {
        Result { () throws(StreamError) in
            let endpoint = try connections.get().endpoint
            var fields = HTTPHeaders()
            fields.add(name: "host", value: endpoint.authority)
            for (name, value) in headers { fields.add(name: name, value: value) }
            fields.add(name: "content-type", value: "application/json")
            fields.add(name: "accept", value: "text/event-stream")
            // A line break in a key would end the header early: refused here, never sent.
            guard fields.allSatisfy({ !$0.name.contains(where: \.isNewline) && !$0.value.contains(where: { $0.isNewline || $0 == "\0" }) }) else {
                throw StreamError(code: .upstreamUnreachable, message: "A header for the model service holds a line break; check its API key.",
                                  retryable: false)
            }
            return HTTPRequestHead(version: .http1_1, method: .POST, uri: endpoint.basePath + path, headers: fields)
        }
    }

    /// One call's request on `route` with its JSON `body`.
    static func request(_ route: Result<HTTPRequestHead, StreamError>, body: ByteBuffer) throws(StreamError) -> UpstreamRequest {
        var head = try route.get()
        head.headers.add(name: "content-length", value: String(body.readableBytes))
        return UpstreamRequest(head: head, body: body)
    }

    /// How long an idle upstream connection stays in the pool for the next call.
    static let poolIdleTimeout = TimeAmount.seconds(60)

    /// How long a response whose message is whole may take to end before its connection is closed.
    static let endGrace = TimeAmount.seconds(2)

    /// The error a model call gets when it passes `timeouts.overall`.
    var overallTimeout: StreamError {
        StreamError(code: .overallTimeout, message: "The model call took longer than \(Self.describe(timeouts.overall)).", retryable: true)
    }

    /// Runs one model call within the overall deadline: sends `request`, retrying what may succeed on a second
    /// try (`refusal` reads a non-200 answer), and reads its stream into `accumulator`.
    ///
    /// The stream is read on its connection's event loop, and each event goes to `sink.takeNow` right there, on
    /// the thread that read it: no task is woken per event. What it does not take (the call runs on another
    /// loop, or the consumer must wait) goes to `sink.take` on the calling task, and the upstream is not read
    /// further until it is delivered; the order of events is kept either way. At most `attempts` attempts are
    /// made (`nil`: the retry policy's).
    ///
    /// The sink's `deadlines` also stop the call at the overall deadline while no chunk arrives; it is checked
    /// after every chunk in any case.
    ///
    /// Each attempt is a span (`ModelCallSpan`) described by `call`, its `traceparent` sent with the request.
    func streamTurn<Accumulator: TurnAccumulating>(
        _ request: UpstreamRequest, into accumulator: Accumulator,
        refusal: (HTTPResponseHead, ByteBuffer?) -> StreamError,
        attempts: Int?, call: ModelCallSpan.Call, sink: some EventSink<ModelStreamEvent>
    ) async throws -> ModelTurn {
        do {
            return try await retrying(request, into: accumulator, refusal: refusal, attempts: retry.attempts(limit: attempts), call: call,
                                      sink: sink)
        } catch let error as StreamError {
            // The provider's own words stay in the server's log, redacted; the client heard Switchboard's.
            if let said = error.upstreamMessage {
                logger.info("the model service refused or failed", metadata: [
                    "code": "\(error.code.rawValue)", "upstream_message": "\(Redaction.upstreamText(said))",
                ])
            }
            throw error
        }
    }

    private func retrying<Accumulator: TurnAccumulating>(
        _ request: UpstreamRequest, into accumulator: Accumulator,
        refusal: (HTTPResponseHead, ByteBuffer?) -> StreamError,
        attempts: Int, call: ModelCallSpan.Call, sink: some EventSink<ModelStreamEvent>
    ) async throws -> ModelTurn {
        try await sink.deadlines.enforcing(timeouts.overall, error: overallTimeout) {
            let deadline = ContinuousClock.now + timeouts.overall
            var attempt = 0
            while true {
                attempt += 1
                let failure: StreamError
                let retryAfter: Duration?
                let span = ModelCallSpan.start(call, attempt: attempt)
                var sent = request
                span.propagate(into: &sent.head.headers)
                let outcome: Outcome
                do {
                    outcome = try await self.attempt(sent, into: accumulator, deadline: deadline, sink: sink)
                } catch {
                    span.end(failing: error)
                    throw error
                }
                switch outcome {
                case .turn(let turn):
                    span.end(turn, captureContent: call.inputMessages != nil)
                    return turn
                case .refused(let head, let body):
                    let error = refusal(head, body)
                    span.end(failing: error)
                    guard Self.mayRetry(head, error: error) else { throw error }
                    failure = error
                    retryAfter = Self.retryAfter(head.headers, atMost: retry.hintCeiling) ?? Self.retryHint(in: body, atMost: retry.hintCeiling)
                case .unreachable(let error):
                    span.end(failing: error)
                    failure = error
                    retryAfter = nil
                }
                guard attempt < attempts, let delay = retry.delay(after: attempt, retryAfter: retryAfter),
                      ContinuousClock.now + delay < deadline else { throw failure }
                logger.notice("model call failed, retrying", metadata: [
                    "attempt": "\(attempt)", "code": "\(failure.code.rawValue)", "delay_ms": "\(delay.inMilliseconds)",
                ])
                try await Task.sleep(for: delay)
            }
        }
    }

    /// How one attempt ended, when it did not throw.
    private enum Outcome {
        case turn(ModelTurn)
        /// A non-200 answer and its body (up to 64 KiB; `nil` past that or when it could not be read).
        case refused(HTTPResponseHead, ByteBuffer?)
        /// No answer: the connection could not be made or failed, or no byte came within `timeouts.firstByte`.
        case unreachable(StreamError)
    }

    /// Sends the request once and reads its answer: a 200's stream into `accumulator`, events going out before
    /// anything else happens, errors included (what arrived is delivered).
    private func attempt<Accumulator: TurnAccumulating, Sink: EventSink<ModelStreamEvent>>(
        _ request: UpstreamRequest, into accumulator: Accumulator, deadline: ContinuousClock.Instant, sink: Sink
    ) async throws -> Outcome {
        let connections = try connections.get()
        let reader = TurnReader(request: request, on: connections.preferredLoop, connections: connections, accumulator: accumulator,
                                sink: sink, firstByte: TimeAmount(timeouts.firstByte), idle: TimeAmount(timeouts.idle),
                                deadline: deadline, overallTimeout: overallTimeout, endGrace: Self.endGrace)
        let sent = NIODeadline.now()
        var whole = false
        defer { reader.release(whole: whole) }
        return try await withTaskCancellationHandler {
            reader.start()
            while true {
                switch await reader.next() {
                case .events(let events, let delivered):
                    do {
                        for event in events { try await sink.take(event) }
                        delivered.succeed()
                    } catch {
                        delivered.fail(error)
                        throw error
                    }
                case .end:
                    try Task.checkCancellation()
                    var turn = try reader.finish()
                    turn.firstChunkAfter = reader.firstEventAt.map { .nanoseconds($0.uptimeNanoseconds - sent.uptimeNanoseconds) }
                    whole = true
                    return .turn(turn)
                case .refused(let head, let body):
                    return .refused(head, body)
                case .failed(let error, .ours):
                    throw error
                case .failed(let error, .transport(let headSeen)):
                    try Task.checkCancellation()
                    let transport = Self.transportError(error, timeouts: timeouts, beforeHead: !headSeen)
                    if !headSeen { return .unreachable(transport) }
                    throw transport
                }
            }
        } onCancel: {
            reader.cancel()
        }
    }

    /// Whether a refused request may succeed when sent again: the server's `x-should-retry` when it says, else
    /// 408, 409, 429, 529 and 5xx, unless the error itself never clears (a used-up quota).
    static func mayRetry(_ response: HTTPResponseHead, error: StreamError) -> Bool {
        switch response.headers.first(name: "x-should-retry")?.lowercased() {
        case "true": return true
        case "false": return false
        default:
            let status = response.status.code
            return ([408, 409, 429, 529].contains(status) || status >= 500) && error.retryable
        }
    }

    /// The wait an error body asks for when no header does: OpenAI's 429s say "Please try again in 644ms" (or
    /// "in 1.5s", "in 20s"). At most `ceiling`; a number that is not finite or not positive is ignored.
    static func retryHint(in body: ByteBuffer?, atMost ceiling: Duration) -> Duration? {
        guard let body else { return nil }
        let text = String(buffer: body)
        guard let range = text.range(of: "try again in ", options: .caseInsensitive) else { return nil }
        let rest = text[range.upperBound...]
        let number = rest.prefix { $0.isNumber || $0 == "." }.prefix(40)
        guard let value = Double(number) else { return nil }
        let unit = rest.dropFirst(number.count)
        if unit.hasPrefix("ms") { return wait(milliseconds: value, atMost: ceiling) }
        if unit.hasPrefix("s") { return wait(milliseconds: value * 1000, atMost: ceiling) }
        return nil
    }

    /// `retry-after-ms`, or `retry-after` in seconds or as an HTTP date; at most `ceiling`, and a value that is
    /// not finite or not positive is ignored (the server's number is input: `1e300` or `inf` never traps).
    static func retryAfter(_ headers: HTTPHeaders, atMost ceiling: Duration) -> Duration? {
        if let ms = headers.first(name: "retry-after-ms").flatMap(Double.init), let wait = wait(milliseconds: ms, atMost: ceiling) {
            return wait
        }
        guard let value = headers.first(name: "retry-after"), value.utf8.count <= 64 else { return nil }
        if let seconds = Double(value) { return wait(milliseconds: seconds * 1000, atMost: ceiling) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        if let date = formatter.date(from: value) {
            return wait(milliseconds: date.timeIntervalSinceNow * 1000, atMost: ceiling)
        }
        return nil
    }

    /// A server's wait in milliseconds as a duration of at most `ceiling`; `nil` when it is not finite or not
    /// positive. Clamped before it is converted, so no number a server sends can overflow.
    static func wait(milliseconds: Double, atMost ceiling: Duration) -> Duration? {
        guard milliseconds.isFinite, milliseconds > 0 else { return nil }
        let ceilingMs = Double(ceiling.inMilliseconds)
        return .milliseconds(Int64(min(milliseconds, ceilingMs).rounded(.up)))
    }

    /// Our error for a transport failure; never includes the request (and so never a key).
    /// `beforeHead`: no response head yet, so silence is a first-byte timeout whichever timer noticed it.
    static func transportError(_ error: any Error, timeouts: UpstreamTimeouts, beforeHead: Bool = false) -> StreamError {
        let unreachable = { (why: String) in
            StreamError(code: .upstreamUnreachable, message: "Could not reach the model service (\(why)).", retryable: true)
        }
        switch error {
        case ChannelError.connectTimeout:
            return StreamError(code: .connectTimeout, message: "Could not connect to the model service within \(describe(timeouts.connect)).",
                               retryable: true)
        case UpstreamTransportError.firstByteTimeout:
            return StreamError(code: .firstByteTimeout, message: "The model service did not answer within \(describe(timeouts.firstByte)).",
                               retryable: true)
        case UpstreamTransportError.idleTimeout:
            if beforeHead { return transportError(UpstreamTransportError.firstByteTimeout, timeouts: timeouts) }
            return StreamError(code: .idleTimeout, message: "The model service went silent for \(describe(timeouts.idle)).",
                               retryable: true)
        case UpstreamTransportError.connectionClosed, ChannelError.eof, ChannelError.ioOnClosedChannel:
            return StreamError(code: .upstreamStreamEnded, message: "The model service closed the connection.", retryable: true)
        case UpstreamTransportError.allConnectionsBusy(let limit):
            return StreamError(code: .upstreamUnreachable,
                               message: "All \(limit) connections to the model service are carrying calls (SWITCHBOARD_UPSTREAM_MAX_CONNECTIONS).",
                               retryable: true)
        case let error as NIOConnectionError:
            if let failure = error.connectionErrors.first { return unreachable(Self.reason(failure.error)) }
            return unreachable("its host name did not resolve")
        case is NIOSSLError, is BoringSSLError, is NIOSSLExtraError:
            // TLS's own words name the host and the certificate: the log has them, the client our sentence.
            var failure = unreachable(Self.reason(error))
            failure.upstreamMessage = "TLS: \(error)"
            return failure
        case is IOError:
            return unreachable(Self.reason(error))
        case HTTPParserError.invalidEOFState:
            // The connection closed in the middle of the answer (a restarted or killed server): an end, not a fault.
            return StreamError(code: .upstreamStreamEnded, message: "The model service closed the connection.", retryable: true)
        case is HTTPParserError:
            return StreamError(code: .upstreamProtocolError, message: "The model service's answer is not valid HTTP/1.1.", retryable: true)
        default:
            return unreachable("\(type(of: error))")
        }
    }

    /// The words for a connection's failure: the system's for a socket error ("connection refused", without the
    /// call that failed), what went wrong in a TLS handshake without the names in it (the certificate's, the host's).
    private static func reason(_ error: any Error) -> String {
        switch error {
        case let error as IOError: String(cString: strerror(error.errnoCode)).lowercased()
        case let error as NIOSSLExtraError where error == .failedToValidateHostname: "TLS: the certificate is not for this host"
        case is NIOSSLError, is BoringSSLError, is NIOSSLExtraError:
            "\(error)".localizedCaseInsensitiveContains("certificate verify failed") || "\(error)".contains("CERTIFICATE_VERIFY_FAILED")
                ? "TLS: the certificate is not trusted" : "TLS: the handshake failed"
        default: "\(type(of: error))"
        }
    }

    static func describe(_ duration: Duration) -> String {
        let ms = duration.inMilliseconds
        return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms"
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
