import AsyncHTTPClient
import ChatCore
import Foundation
import Logging
import MCP
import NIOCore
import NIOHTTP1
import Tracing

/// The client side of MCP's Streamable HTTP transport on AsyncHTTPClient.
///
/// Each message is POSTed to the endpoint; the server answers with one JSON message, with a Server-Sent
/// Events stream of messages (decoded as they arrive), or with 202 for a notification. The session id the
/// server assigns (`Mcp-Session-Id`) and the negotiated protocol version go with every later request; the
/// session is ended with a DELETE on disconnect. (The SDK's own HTTP transport does not decode SSE answers
/// on Linux, and most servers answer that way.)
public actor StreamableHTTPTransport: Transport {
    public nonisolated let logger: Logger
    let endpoint: String
    let http: HTTPClient
    let headers: [(String, String)]
    let requestTimeout: TimeAmount
    private var sessionID: String?
    private var protocolVersion: String?
    private var connected = false
    private let messages: AsyncThrowingStream<Data, any Error>
    private let continuation: AsyncThrowingStream<Data, any Error>.Continuation

    /// Messages larger than this are refused, so a broken server cannot exhaust memory.
    static let maxMessageBytes = 16 << 20
    /// Establishing a connection to an MCP server.
    static let connectTimeout = TimeAmount.seconds(5)
    /// The longest silence on a connection: a server silent this long is gone (tool calls have their own,
    /// shorter, timeout).
    public static let readTimeout = TimeAmount.seconds(300)
    /// How long the session's `DELETE` may take as the transport disconnects.
    static let closeTimeout = TimeAmount.seconds(2)

    /// The HTTP client of every MCP server: a refused connection fails the call at once (the reconnect loop
    /// retries), rather than being retried inside the pool until the request's deadline.
    public static let sharedClient: HTTPClient = {
        var configuration = HTTPClient.Configuration(timeout: .init(connect: connectTimeout, read: readTimeout))
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.decompression = .disabled
        // Headers such as an Authorization token must never follow a redirect to another host.
        configuration.redirectConfiguration = .disallow
        // The calling tool's span is propagated by `send` itself, once.
        configuration.tracing.tracer = nil
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    public init(endpoint: String, headers: [String: String] = [:], http: HTTPClient = sharedClient,
                requestTimeout: Duration = Duration(readTimeout), logger: Logger) {
        self.endpoint = endpoint
        self.http = http
        self.headers = headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        self.requestTimeout = TimeAmount(requestTimeout)
        self.logger = logger
        (messages, continuation) = AsyncThrowingStream.makeStream()
    }

    public func connect() async throws {
        connected = true
    }

    public func disconnect() async {
        guard connected else { return }
        connected = false
        continuation.finish()
        if let sessionID {
            var request = HTTPClientRequest(url: endpoint)
            request.method = .DELETE
            request.headers.add(name: "Mcp-Session-Id", value: sessionID)
            _ = try? await http.execute(request, timeout: Self.closeTimeout)
        }
    }

    public func receive() -> AsyncThrowingStream<Data, any Error> { messages }

    public func send(_ data: Data) async throws {
        guard connected else { throw MCPError.connectionClosed }
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "application/json, text/event-stream")
        if let sessionID { request.headers.add(name: "Mcp-Session-Id", value: sessionID) }
        if let protocolVersion { request.headers.add(name: "MCP-Protocol-Version", value: protocolVersion) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        // The trace of the tool call that sends this (W3C traceparent), when there is one.
        if let context = ServiceContext.current {
            InstrumentationSystem.instrument.inject(context, into: &request.headers, using: TraceHeadersInjector())
        }
        request.body = .bytes(ByteBuffer(bytes: data))

        let response = try await http.execute(request, timeout: requestTimeout)
        if let assigned = response.headers.first(name: "Mcp-Session-Id") { sessionID = assigned }
        guard (200..<300).contains(response.status.code) else {
            let body = (try? await response.body.collect(upTo: 4096)).map { String(buffer: $0) } ?? ""
            if response.status == .notFound, sessionID != nil {
                // The server forgot the session (it restarted): the connection must be made again.
                sessionID = nil
                continuation.finish(throwing: MCPError.transportError(MCPSessionExpired()))
            }
            // No URL in the message: it may reach the model; the log has the endpoint.
            logger.warning("MCP server answered with an error", metadata: [
                "status": "\(response.status.code)", "endpoint": "\(Redaction.credentials(in: endpoint))",
            ])
            throw MCPError.internalError("HTTP \(response.status.code) from the MCP server: \(body.prefix(300))")
        }
        let contentType = response.headers.first(name: "Content-Type")?.lowercased() ?? ""
        if contentType.hasPrefix("text/event-stream") {
            var decoder = SSEDecoder()
            for try await chunk in response.body {
                try chunk.withUnsafeReadableBytes { bytes in
                    try decoder.feed(bytes) { event in
                        guard event.event == nil || event.event == "message", !event.data.isEmpty else { return }
                        deliver(Data(event.data.utf8))
                    }
                }
            }
        } else if contentType.hasPrefix("application/json") {
            let body = try await response.body.collect(upTo: Self.maxMessageBytes)
            if body.readableBytes > 0 { deliver(Data(buffer: body)) }
        } else {
            // 202 Accepted for notifications and responses; nothing to read.
            _ = try? await response.body.collect(upTo: 4096)
        }
    }

    private func deliver(_ message: Data) {
        if protocolVersion == nil, let version = Self.negotiatedVersion(message) { protocolVersion = version }
        continuation.yield(message)
    }

    /// The protocol version from an initialize result, if this message is one.
    static func negotiatedVersion(_ message: Data) -> String? {
        guard let value = try? message.withUnsafeBytes({ try JSONValue(parsing: $0) }),
              case .object(let fields) = value, case .object(let result)? = fields["result"],
              case .string(let version)? = result["protocolVersion"] else { return nil }
        return version
    }
}

struct MCPSessionExpired: Error, CustomStringConvertible {
    var description: String { "the server ended the MCP session" }
}

/// Writes propagation fields into a request's headers, replacing any set by hand.
struct TraceHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into headers: inout HTTPHeaders) {
        // `tracestate` is the caller's vendors' data: it stays here, only the trace's position travels on.
        guard key.lowercased() != "tracestate" else { return }
        headers.replaceOrAdd(name: key, value: value)
    }
}
