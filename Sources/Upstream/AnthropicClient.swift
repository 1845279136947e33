import AsyncHTTPClient
import ChatCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Settings for the Anthropic Messages API client, with defaults for every field.
public struct AnthropicConfiguration: Sendable {
    public struct Timeouts: Sendable {
        /// Establishing the connection (TCP and TLS).
        public var connect: Duration = .seconds(10)
        /// From sending the request to the response head.
        public var firstByte: Duration = .seconds(60)
        /// The longest silence between bytes of the stream; Anthropic pings every 15–30 s, so keep it above that.
        public var idle: Duration = .seconds(90)
        /// One model call from start to end.
        public var overall: Duration = .seconds(600)

        public init() {}
    }

    public struct Retry: Sendable {
        /// Attempts in all, the first included.
        public var maxAttempts: Int = 3
        public var baseDelay: Duration = .milliseconds(500)
        public var maxDelay: Duration = .seconds(8)
        /// A `retry-after` longer than this is not waited for; the error is reported instead.
        public var maxRetryAfter: Duration = .seconds(60)

        public init() {}
    }

    public var baseURL: String = "https://api.anthropic.com"
    public var apiKey: String
    /// Upstream HTTP/1.1 connections per host. Each open stream holds one, so this bounds concurrent streams;
    /// AsyncHTTPClient's default of 8 would queue the ninth chat.
    public var maxConnections: Int = 1024
    public var version: String = "2023-06-01"
    public var timeouts = Timeouts()
    public var retry = Retry()

    public init(apiKey: String, baseURL: String = "https://api.anthropic.com") {
        self.apiKey = apiKey
        self.baseURL = baseURL
    }
}

/// Streams model turns from `POST {baseURL}/v1/messages`.
///
/// Retries 408, 409, 429, 5xx and 529 answers and connection failures before any byte of the stream, with
/// exponential backoff that honours `retry-after`; after that, failures are `StreamError`s. Cancelling the
/// caller's task cancels the request. The API key goes in a header and nowhere else.
public final class AnthropicClient: LanguageModel, Sendable {
    public let configuration: AnthropicConfiguration
    private let http: HTTPClient
    private let logger: Logger

    public init(configuration: AnthropicConfiguration, logger: Logger = Logger(label: "switchboard.upstream")) {
        self.configuration = configuration
        self.logger = logger
        var httpConfiguration = HTTPClient.Configuration(
            timeout: .init(connect: TimeAmount(configuration.timeouts.connect), read: TimeAmount(configuration.timeouts.idle)))
        httpConfiguration.decompression = .disabled
        // The key goes in a header: a redirect must never carry it to another host.
        httpConfiguration.redirectConfiguration = .disallow
        httpConfiguration.connectionPool = .init(idleTimeout: .seconds(60),
                                                 concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.maxConnections)
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
    }

    /// Closes the connection pool; call once when the server stops.
    public func shutdown() async throws {
        try await http.shutdown()
    }

    public func streamTurn(_ request: ModelRequest, onEvent: (ModelStreamEvent) async throws -> Void) async throws -> ModelTurn {
        // The deadline is checked after every chunk below; where the caller's task has a keeper, it also fires while
        // no chunk arrives (a silent upstream, shorter silences than the idle timeout).
        try await DeadlineKeeper.enforcing(configuration.timeouts.overall, error: overallTimeout) {
            try await streamTurnUnkept(request, onEvent: onEvent)
        }
    }

    private var overallTimeout: StreamError {
        StreamError(code: .overallTimeout, message: "The model call took longer than \(Self.describe(configuration.timeouts.overall)).",
                    retryable: true)
    }

    private func streamTurnUnkept(_ request: ModelRequest, onEvent: (ModelStreamEvent) async throws -> Void) async throws -> ModelTurn {
        let clock = ContinuousClock()
        let deadline = clock.now + configuration.timeouts.overall
        let body = try Self.requestBody(request)
        let response = try await openStream(body: body, deadline: deadline)
        let requestId = response.headers.first(name: "request-id")
        var decoder = SSEDecoder()
        var accumulator = AnthropicTurnAccumulator()
        var pending: [ModelStreamEvent] = []
        var decodeError: StreamError?
        var chunks = response.body.makeAsyncIterator()
        while true {
            let chunk: ByteBuffer?
            do {
                chunk = try await chunks.next()
            } catch {
                try Task.checkCancellation()
                throw Self.transportError(error, timeouts: configuration.timeouts)
            }
            guard let chunk else { break }
            do {
                try chunk.withUnsafeReadableBytes { bytes in try decoder.feed(bytes) { event in
                    guard decodeError == nil else { return }
                    do throws(StreamError) {
                        if let modelEvent = try accumulator.handle(event) { pending.append(modelEvent) }
                    } catch {
                        decodeError = error
                    }
                } }
            } catch {
                throw StreamError(code: .upstreamProtocolError, message: "The model service sent a line or an event over 4 MiB.",
                                  retryable: false)
            }
            // Events go out before anything else happens, errors included: what arrived is delivered.
            for event in pending { try await onEvent(event) }
            pending.removeAll(keepingCapacity: true)
            if var error = decodeError {
                if let requestId { error.message += " (request \(requestId))" }
                throw error
            }
            // The message is whole: what follows `message_stop` (nothing, from Anthropic) is not waited for.
            if accumulator.messageStopped { break }
            if clock.now > deadline { throw overallTimeout }
        }
        try Task.checkCancellation()
        return try accumulator.finish()
    }

    /// Sends the request, retrying what may succeed on a second try, and returns a 200 response.
    private func openStream(body: ByteBuffer, deadline: ContinuousClock.Instant) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: configuration.baseURL.trimmingSuffix("/") + "/v1/messages")
        request.method = .POST
        request.headers.add(name: "x-api-key", value: configuration.apiKey)
        request.headers.add(name: "anthropic-version", value: configuration.version)
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "accept", value: "text/event-stream")
        request.body = .bytes(body)

        let retry = configuration.retry
        var attempt = 0
        while true {
            attempt += 1
            let failure: StreamError
            let retryAfter: Duration?
            do {
                let response = try await http.execute(request, deadline: .now() + TimeAmount(configuration.timeouts.firstByte))
                if response.status == .ok { return response }
                let errorBody = try? await response.body.collect(upTo: 64 << 10)
                let error = Self.httpError(status: response.status, body: errorBody, requestId: response.headers.first(name: "request-id"))
                guard [408, 409, 429, 529].contains(response.status.code) || response.status.code >= 500 else { throw error }
                failure = error
                retryAfter = Self.retryAfter(response.headers)
            } catch let error where !(error is StreamError) {
                try Task.checkCancellation()
                failure = Self.transportError(error, timeouts: configuration.timeouts, beforeHead: true)
                retryAfter = nil
            }
            guard attempt < retry.maxAttempts else { throw failure }
            let delay: Duration
            if let retryAfter {
                guard retryAfter <= retry.maxRetryAfter else { throw failure }
                delay = retryAfter
            } else {
                let exponential = retry.baseDelay * Int(1 << min(attempt - 1, 20))
                let jitter = Double.random(in: 0.75...1)
                delay = min(exponential, retry.maxDelay) * jitter
            }
            guard ContinuousClock().now + delay < deadline else { throw failure }
            logger.notice("model call failed, retrying", metadata: [
                "attempt": "\(attempt)", "code": "\(failure.code.rawValue)", "delay_ms": "\(delay.inMilliseconds)",
            ])
            try await Task.sleep(for: delay)
        }
    }

    // MARK: Wire helpers

    /// The JSON body: `model`, `max_tokens`, `messages`, `system`, `tools`, `stream: true`.
    static func requestBody(_ request: ModelRequest) throws -> ByteBuffer {
        var fields: [String: JSONValue] = [
            "model": .string(request.model),
            "max_tokens": .number(Double(request.maxTokens)),
            "stream": .bool(true),
            "messages": .array(request.messages.map { message in
                let content: JSONValue = switch message.content {
                case .text(let text): .string(text)
                case .blocks(let blocks): .array(blocks)
                }
                return .object(["role": .string(message.role.rawValue), "content": content])
            }),
        ]
        if let system = request.system { fields["system"] = .string(system) }
        if !request.tools.isEmpty {
            fields["tools"] = .array(request.tools.map {
                .object(["name": .string($0.name), "description": .string($0.description), "input_schema": $0.inputSchema])
            })
        }
        return ByteBuffer(bytes: try JSONEncoder().encode(JSONValue.object(fields)))
    }

    static func httpError(status: HTTPResponseStatus, body: ByteBuffer?, requestId: String?) -> StreamError {
        struct Envelope: Decodable {
            struct Detail: Decodable {
                let type: String?
                let message: String?
            }
            let error: Detail?
        }
        let envelope = body.flatMap { try? JSONDecoder().decode(Envelope.self, from: Data($0.readableBytesView)) }
        var error = AnthropicTurnAccumulator.streamError(type: envelope?.error?.type ?? Self.errorType(for: status.code),
                                                         message: envelope?.error?.message, status: Int(status.code))
        error.message += " (HTTP \(status.code)\(requestId.map { ", request \($0)" } ?? ""))"
        return error
    }

    private static func errorType(for status: UInt) -> String? {
        switch status {
        case 429: "rate_limit_error"
        case 529: "overloaded_error"
        case 401, 403: "authentication_error"
        case 500...599: "api_error"
        default: nil
        }
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

    /// Our error for a transport failure; never includes the request (and so never the key).
    /// `beforeHead`: no response head yet, so silence is a first-byte timeout whichever timer noticed it.
    static func transportError(_ error: any Error, timeouts: AnthropicConfiguration.Timeouts, beforeHead: Bool = false) -> StreamError {
        guard let error = error as? HTTPClientError else {
            return StreamError(code: .upstreamUnreachable, message: "Could not reach the model service (\(type(of: error))).",
                               retryable: true)
        }
        switch error {
        case .connectTimeout, .tlsHandshakeTimeout:
            return StreamError(code: .connectTimeout, message: "Could not connect to the model service within \(describe(timeouts.connect)).",
                               retryable: true)
        case .deadlineExceeded, .readTimeout where beforeHead:
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
