import ChatCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Settings for the Anthropic Messages API client, with defaults for every field.
public struct AnthropicConfiguration: UpstreamConfiguration {
    public typealias Timeouts = UpstreamTimeouts
    public typealias Retry = RetryPolicy

    public var baseURL: String = "https://api.anthropic.com"
    public var apiKey: String
    /// Upstream HTTP/1.1 connections open at once (`UpstreamConnections`). Each open stream holds one, so this
    /// bounds concurrent streams to the provider.
    public var maxConnections: Int = 1024
    public var version: String = "2023-06-01"
    public var timeouts = Timeouts()
    public var retry = Retry()
    /// Whether model call spans carry the messages sent and received (`ContentCapture`).
    public var captureContent = false
    /// Whether requests mark prompt-cache breakpoints (`AnthropicClient.requestBody`).
    public var promptCache = true
    /// A PEM file of certificate authorities trusted for `https` besides the system's.
    public var caFile: String?

    public init(apiKey: String, baseURL: String = "https://api.anthropic.com") {
        self.apiKey = apiKey
        self.baseURL = baseURL
    }
}

/// Streams model turns from `POST {baseURL}/v1/messages`, on the shared transport (`StreamingHTTP`: retries,
/// timeouts, cancellation). The API key goes in a header and nowhere else.
public final class AnthropicClient: LanguageModel, Sendable {
    public let configuration: AnthropicConfiguration
    private let http: StreamingHTTP
    /// `POST /v1/messages` with the key and the API version.
    private let messages: Result<HTTPRequestHead, StreamError>
    /// Where the calls go, for their spans.
    private let server: (address: String, port: Int)?

    public init(configuration: AnthropicConfiguration, logger: Logger = Logger(label: "switchboard.upstream")) {
        self.configuration = configuration
        http = StreamingHTTP(configuration, baseURL: configuration.baseURL, logger: logger)
        messages = http.route("/v1/messages", headers: [("x-api-key", configuration.apiKey), ("anthropic-version", configuration.version)])
        server = ModelCallSpan.server(of: configuration.baseURL)
    }

    /// Closes the idle connections; call once when the server stops.
    public func shutdown() async throws {
        await http.shutdown()
    }

    public func streamTurn(_ request: ModelRequest, into sink: some EventSink<ModelStreamEvent>) async throws -> ModelTurn {
        let call = try StreamingHTTP.request(messages, body: try Self.requestBody(request, promptCache: configuration.promptCache))
        return try await http.streamTurn(call, into: AnthropicTurnAccumulator(), refusal: { response, body in
            Self.httpError(status: response.status, body: body, requestId: response.headers.first(name: "request-id"))
        }, attempts: request.maxAttempts, call: ModelCallSpan.Call(request, provider: "anthropic", server: server, configuration: configuration),
           sink: sink)
    }

    // MARK: Wire helpers

    /// The JSON body: `model`, `max_tokens`, `messages`, `system`, `tools`, `stream: true`.
    ///
    /// With `promptCache`, up to three of the API's four cache breakpoints (`cache_control: ephemeral`): on the last
    /// tool definition and on the system prompt (the same across a chat's calls and across chats), and, once the
    /// conversation holds a model turn (the loop's second call on), on the last block of the last message, so each
    /// call reads the previous call's prefix from the cache at a tenth of the input price. A prefix shorter than
    /// the model's minimum is simply not cached. Clients' own `cache_control` never gets here (`ChatRequest`
    /// rebuilds every block).
    static func requestBody(_ request: ModelRequest, promptCache: Bool = false) throws -> ByteBuffer {
        let breakpoint: JSONValue = ["type": "ephemeral"]
        var messages = request.messages.map(\.json)
        if promptCache, request.messages.contains(where: { $0.role == .assistant }), let last = messages.indices.last,
           let marked = Self.markLastBlock(of: request.messages[last], with: breakpoint) {
            messages[last] = marked
        }
        var fields: [String: JSONValue] = [
            "model": .string(request.model),
            "max_tokens": .number(Double(request.maxTokens)),
            "stream": .bool(true),
            "messages": .array(messages),
        ]
        if let budget = request.thinkingBudget {
            fields["thinking"] = ["type": "enabled", "budget_tokens": .number(Double(budget))]
        }
        if let system = request.system {
            fields["system"] = promptCache ? [["type": "text", "text": .string(system), "cache_control": breakpoint]] : .string(system)
        }
        // The tools, the bulk of the body, are the same for every call with the same tool set: rendered once.
        return ByteBuffer(bytes: (promptCache ? cachedTools : plainTools).body(fields, tools: request.tools))
    }

    /// Each tool set's `tools` array, plain and with a prompt-cache breakpoint on its last definition.
    private static let plainTools = ToolDefinitionsJSON { toolsJSON($0, breakpoint: nil) }
    private static let cachedTools = ToolDefinitionsJSON { toolsJSON($0, breakpoint: ["type": "ephemeral"]) }

    /// The API's `tools`: name, description and input schema of each, `cache_control: breakpoint` on the last.
    private static func toolsJSON(_ definitions: [ToolDefinition], breakpoint: JSONValue?) -> JSONValue {
        var tools: [JSONValue] = definitions.map {
            .object(["name": .string($0.name), "description": .string($0.description), "input_schema": $0.inputSchema])
        }
        if let breakpoint, case .object(var last)? = tools.last {
            last["cache_control"] = breakpoint
            tools[tools.count - 1] = .object(last)
        }
        return .array(tools)
    }

    /// `message` with `cache_control` on its last block (a string content becomes one text block).
    private static func markLastBlock(of message: ChatMessage, with breakpoint: JSONValue) -> JSONValue? {
        var blocks: [JSONValue] = switch message.content {
        case .text(let text): [["type": "text", "text": .string(text)]]
        case .blocks(let blocks): blocks
        }
        guard case .object(var last)? = blocks.last else { return nil }
        last["cache_control"] = breakpoint
        blocks[blocks.count - 1] = .object(last)
        return .object(["role": .string(message.role.rawValue), "content": .array(blocks)])
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
        error.message += " (HTTP \(status.code))"
        // The provider's request id, when it is one (letters, digits, `._:-`): the client can quote it, the log has it.
        if let requestId = Redaction.requestId(requestId) {
            error.message += " (request \(requestId))"
            error.upstreamMessage = (error.upstreamMessage ?? "") + " (request \(requestId))"
        }
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
}
