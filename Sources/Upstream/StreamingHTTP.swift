import AsyncHTTPClient
import ChatCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOHTTP1

/// What a provider's stream format needs to build one turn from its server-sent events.
protocol TurnAccumulating {
    /// Handles one event, telling `emit` what the pipeline should hear about.
    mutating func handle(_ event: ServerSentEvent, emit: (ModelStreamEvent) -> Void) throws(StreamError)
    /// The message is whole: what follows it is not waited for.
    var isComplete: Bool { get }
    /// The finished turn; an error when the stream ended before the message was whole.
    func finish() throws(StreamError) -> ModelTurn
}

/// The transport every provider shares: one connection pool, one retry policy, one way of reading a streamed
/// turn, one meaning for each transport failure.
///
/// Before any byte of the stream, 408, 409, 429, 5xx and 529 answers and connection failures are tried again,
/// with exponential backoff that honours `retry-after`; after that, failures are `StreamError`s. Cancelling the
/// caller's task cancels the request. No redirect is followed, so a key in a header never reaches another host.
final class StreamingHTTP: Sendable {
    let timeouts: UpstreamTimeouts
    let retry: RetryPolicy
    /// One client per event loop of the shared group, each keeping its connections on its own loop, so a model
    /// call made from a task running on a loop (a stream's producer prefers its client connection's) reads the
    /// upstream on that same thread; calls from elsewhere take the loops in turn.
    private let clients: [ObjectIdentifier: HTTPClient]
    private let group: any EventLoopGroup
    private let logger: Logger

    init(timeouts: UpstreamTimeouts, retry: RetryPolicy, maxConnections: Int, logger: Logger) {
        self.timeouts = timeouts
        self.retry = retry
        self.logger = logger
        var configuration = HTTPClient.Configuration(timeout: .init(connect: TimeAmount(timeouts.connect), read: TimeAmount(timeouts.idle)))
        configuration.decompression = .disabled
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnections)
        // A connection that cannot be made fails its request at once: the retry policy (with its backoff and
        // deadline) or a route's fallback decides what happens next, instead of the pool retrying behind it
        // until the request's first-byte deadline.
        configuration.connectionPool.retryConnectionEstablishment = false
        group = HTTPClient.defaultEventLoopGroup
        var clients: [ObjectIdentifier: HTTPClient] = [:]
        for loop in group.makeIterator() {
            clients[ObjectIdentifier(loop)] = HTTPClient(eventLoopGroup: loop, configuration: configuration)
        }
        self.clients = clients
    }

    func shutdown() async throws {
        for client in clients.values { try await client.shutdown() }
    }

    /// The client whose connections live on the current event loop, or the next loop's.
    private var client: HTTPClient {
        if let loop = MultiThreadedEventLoopGroup.currentEventLoop, let client = clients[ObjectIdentifier(loop)] {
            return client
        }
        return clients[ObjectIdentifier(group.next())]!
    }

    /// A streaming model call: `POST url` with a JSON `body`, asking for an event stream, with the provider's
    /// `headers` (its key among them).
    static func request(_ url: String, headers: [(String, String)], body: ByteBuffer) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(contentsOf: headers)
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "accept", value: "text/event-stream")
        request.body = .bytes(body)
        return request
    }

    /// The error a model call gets when it passes `timeouts.overall`.
    var overallTimeout: StreamError {
        StreamError(code: .overallTimeout, message: "The model call took longer than \(Self.describe(timeouts.overall)).", retryable: true)
    }

    /// Runs one model call within the overall deadline: sends `request`, retrying what may succeed on a second
    /// try (`refusal` reads a non-200 answer), and reads its stream into `accumulator`, calling `onEvent` as
    /// events arrive. Where the caller's task has a `DeadlineKeeper`, the deadline also fires while no chunk
    /// arrives; it is checked after every chunk in any case.
    func streamTurn<Accumulator: TurnAccumulating>(
        _ request: HTTPClientRequest, into accumulator: Accumulator,
        refusal: (HTTPClientResponse, ByteBuffer?) -> StreamError,
        onEvent: (ModelStreamEvent) async throws -> Void
    ) async throws -> ModelTurn {
        try await DeadlineKeeper.enforcing(timeouts.overall, error: overallTimeout) {
            let deadline = ContinuousClock.now + timeouts.overall
            let response = try await open(request, deadline: deadline, refusal: refusal)
            return try await read(response, into: accumulator, deadline: deadline, onEvent: onEvent)
        }
    }

    /// Sends the request, retrying what may succeed on a second try, and returns a 200 response.
    private func open(_ request: HTTPClientRequest, deadline: ContinuousClock.Instant,
                      refusal: (HTTPClientResponse, ByteBuffer?) -> StreamError) async throws -> HTTPClientResponse {
        let attempts = retry.attemptsNow
        var attempt = 0
        while true {
            attempt += 1
            let failure: StreamError
            let retryAfter: Duration?
            do {
                let response = try await client.execute(request, deadline: .now() + TimeAmount(timeouts.firstByte))
                if response.status == .ok { return response }
                let body = try? await response.body.collect(upTo: 64 << 10)
                let error = refusal(response, body)
                guard Self.mayRetry(response, error: error) else { throw error }
                failure = error
                retryAfter = Self.retryAfter(response.headers) ?? Self.retryHint(in: body)
            } catch let error where !(error is StreamError) {
                try Task.checkCancellation()
                failure = Self.transportError(error, timeouts: timeouts, beforeHead: true)
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

    /// Reads a 200 response's event stream into `accumulator`; events go out before anything else happens, errors
    /// included (what arrived is delivered).
    private func read<Accumulator: TurnAccumulating>(
        _ response: HTTPClientResponse, into accumulator: Accumulator, deadline: ContinuousClock.Instant,
        onEvent: (ModelStreamEvent) async throws -> Void
    ) async throws -> ModelTurn {
        var accumulator = accumulator
        let requestId = response.headers.first(name: "request-id") ?? response.headers.first(name: "x-request-id")
        var decoder = SSEDecoder()
        var pending: [ModelStreamEvent] = []
        var decodeError: StreamError?
        var chunks = response.body.makeAsyncIterator()
        while true {
            let chunk: ByteBuffer?
            do {
                chunk = try await chunks.next()
            } catch {
                try Task.checkCancellation()
                throw Self.transportError(error, timeouts: timeouts)
            }
            guard let chunk else { break }
            do {
                try chunk.withUnsafeReadableBytes { bytes in try decoder.feed(bytes) { event in
                    guard decodeError == nil else { return }
                    do throws(StreamError) {
                        try accumulator.handle(event) { pending.append($0) }
                    } catch {
                        decodeError = error
                    }
                } }
            } catch {
                throw StreamError(code: .upstreamProtocolError, message: "The model service sent a line or an event over 4 MiB.",
                                  retryable: false)
            }
            for event in pending { try await onEvent(event) }
            pending.removeAll(keepingCapacity: true)
            if var error = decodeError {
                if let requestId { error.message += " (request \(requestId))" }
                throw error
            }
            // The message is whole: what follows it (nothing, from a well-behaved server) is not waited for.
            if accumulator.isComplete { break }
            if ContinuousClock.now > deadline { throw overallTimeout }
        }
        try Task.checkCancellation()
        return try accumulator.finish()
    }

    /// Whether a refused request may succeed when sent again: the server's `x-should-retry` when it says, else
    /// 408, 409, 429, 529 and 5xx, unless the error itself never clears (a used-up quota).
    static func mayRetry(_ response: HTTPClientResponse, error: StreamError) -> Bool {
        switch response.headers.first(name: "x-should-retry")?.lowercased() {
        case "true": return true
        case "false": return false
        default:
            let status = response.status.code
            return ([408, 409, 429, 529].contains(status) || status >= 500) && error.retryable
        }
    }

    /// The wait an error body asks for when no header does: OpenAI's 429s say "Please try again in 644ms" (or
    /// "in 1.5s", "in 20s").
    static func retryHint(in body: ByteBuffer?) -> Duration? {
        guard let body else { return nil }
        let text = String(buffer: body)
        guard let range = text.range(of: "try again in ", options: .caseInsensitive) else { return nil }
        let rest = text[range.upperBound...]
        let number = rest.prefix { $0.isNumber || $0 == "." }
        guard let value = Double(number), value > 0 else { return nil }
        let unit = rest.dropFirst(number.count)
        if unit.hasPrefix("ms") { return .milliseconds(Int64(value.rounded(.up))) }
        if unit.hasPrefix("s") { return .milliseconds(Int64((value * 1000).rounded(.up))) }
        return nil
    }

    /// `retry-after-ms`, or `retry-after` in seconds or as an HTTP date.
    static func retryAfter(_ headers: HTTPHeaders) -> Duration? {
        if let ms = headers.first(name: "retry-after-ms").flatMap(Double.init), ms > 0 {
            return .milliseconds(Int64(ms))
        }
        guard let value = headers.first(name: "retry-after") else { return nil }
        if let seconds = Double(value), seconds > 0 { return .milliseconds(Int64(seconds * 1000)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        if let date = formatter.date(from: value) {
            let seconds = date.timeIntervalSinceNow
            return seconds > 0 ? .milliseconds(Int64(seconds * 1000)) : nil
        }
        return nil
    }

    /// Our error for a transport failure; never includes the request (and so never a key).
    /// `beforeHead`: no response head yet, so silence is a first-byte timeout whichever timer noticed it.
    static func transportError(_ error: any Error, timeouts: UpstreamTimeouts, beforeHead: Bool = false) -> StreamError {
        guard let error = error as? HTTPClientError else {
            return StreamError(code: .upstreamUnreachable, message: "Could not reach the model service (\(type(of: error))).",
                               retryable: true)
        }
        switch error {
        case .connectTimeout, .tlsHandshakeTimeout:
            return StreamError(code: .connectTimeout, message: "Could not connect to the model service within \(describe(timeouts.connect)).",
                               retryable: true)
        case _ where error == .deadlineExceeded || (error == .readTimeout && beforeHead):
            return StreamError(code: .firstByteTimeout, message: "The model service did not answer within \(describe(timeouts.firstByte)).",
                               retryable: true)
        case .readTimeout:
            return StreamError(code: .idleTimeout, message: "The model service went silent for \(describe(timeouts.idle)).",
                               retryable: true)
        case .remoteConnectionClosed:
            return StreamError(code: .upstreamStreamEnded, message: "The model service closed the connection.", retryable: true)
        default:
            return StreamError(code: .upstreamUnreachable, message: "Could not reach the model service (\(error.shortDescription)).",
                               retryable: true)
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
