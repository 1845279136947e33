import ChatCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Settings for an OpenAI-compatible Chat Completions server (OpenAI, Ollama's `/v1`, vLLM, llama-server,
/// LiteLLM, OpenRouter), with defaults for every field.
public struct OpenAIConfiguration: UpstreamConfiguration {
    /// The API's base, `/v1` included: `https://api.openai.com/v1`, `http://127.0.0.1:11434/v1`.
    public var baseURL: String
    /// Sent as `Authorization: Bearer …`; local servers accept any key or none.
    public var apiKey: String?
    /// `max_tokens` (Ollama, vLLM, llama-server) or `max_completion_tokens` (OpenAI's o-series refuse the former).
    public var maxTokensField: String = "max_tokens"
    /// Upstream HTTP/1.1 connections per host; each open stream holds one.
    public var maxConnections: Int = 1024
    public var timeouts = UpstreamTimeouts()
    public var retry = RetryPolicy()
    /// Whether model call spans carry the messages sent and received (`ContentCapture`).
    public var captureContent = false
    /// A PEM file of certificate authorities trusted for `https` besides the system's.
    public var caFile: String?

    public init(baseURL: String, apiKey: String? = nil) {
        self.baseURL = baseURL
        self.apiKey = apiKey
    }
}

/// Streams model turns from `POST {baseURL}/chat/completions` with `stream: true`, on the shared transport
/// (retries, timeouts, cancellation as for Anthropic). Requests are translated from the Anthropic-shaped
/// conversation the agent loop keeps (tool calls become `tool_calls` with their arguments as a JSON string, tool
/// results `tool` messages); the answer is read by `OpenAITurnAccumulator` into the same shape.
public final class OpenAIClient: LanguageModel, Sendable {
    public let configuration: OpenAIConfiguration
    private let http: StreamingHTTP
    /// `POST /chat/completions` with the key, if any.
    private let completions: Result<HTTPRequestHead, StreamError>
    /// Where the calls go, for their spans.
    private let server: (address: String, port: Int)?

    public init(configuration: OpenAIConfiguration, logger: Logger = Logger(label: "switchboard.upstream.openai")) {
        self.configuration = configuration
        http = StreamingHTTP(configuration, baseURL: configuration.baseURL, logger: logger)
        completions = http.route("/chat/completions", headers: configuration.apiKey.map { [("authorization", "Bearer \($0)")] } ?? [])
        server = ModelCallSpan.server(of: configuration.baseURL)
    }

    /// Closes the idle connections; call once when the server stops.
    public func shutdown() async throws {
        await http.shutdown()
    }

    public func streamTurn(_ request: ModelRequest, into sink: some EventSink<ModelStreamEvent>) async throws -> ModelTurn {
        let call = try StreamingHTTP.request(completions, body: try Self.requestBody(request, maxTokensField: configuration.maxTokensField))
        return try await http.streamTurn(call, into: OpenAITurnAccumulator(), refusal: { response, body in
            Self.httpError(status: response.status, body: body, requestId: response.headers.first(name: "x-request-id"))
        }, attempts: request.maxAttempts, call: ModelCallSpan.Call(request, provider: "openai", server: server, configuration: configuration),
           sink: sink)
    }

    // MARK: Wire helpers

    /// The JSON body: `model`, the token limit, `messages` (system first), `tools`, `stream` with usage.
    static func requestBody(_ request: ModelRequest, maxTokensField: String) throws -> ByteBuffer {
        var messages: [JSONValue] = []
        if let system = request.system { messages.append(["role": "system", "content": .string(system)]) }
        for message in request.messages { messages.append(contentsOf: translate(message)) }
        var fields: [String: JSONValue] = [
            "model": .string(request.model),
            maxTokensField: .number(Double(request.maxTokens)),
            "stream": true,
            "stream_options": ["include_usage": true],
            "messages": .array(messages),
        ]
        // The tools, the bulk of the body, are the same for every call with the same tool set: rendered once.
        return ByteBuffer(bytes: tools.body(fields, tools: request.tools))
    }

    /// Each tool set's `tools` array: a `function` with name, description and parameters for each.
    private static let tools = ToolDefinitionsJSON { definitions in
        .array(definitions.map {
            ["type": "function", "function": ["name": .string($0.name), "description": .string($0.description),
                                              "parameters": $0.inputSchema]]
        })
    }

    /// One conversation message as OpenAI messages: a user turn's tool results become one `tool` message each
    /// (first, right after the assistant turn that called them), its text a `user` message; an assistant turn's
    /// text is its `content` and its tool calls `tool_calls`. Thinking is not sent back (it has no signature here).
    static func translate(_ message: ChatMessage) -> [JSONValue] {
        let role = JSONValue.string(message.role.rawValue)
        guard case .blocks(let blocks) = message.content else {
            if case .text(let text) = message.content { return [["role": role, "content": .string(text)]] }
            return []
        }
        let text = blocks.compactMap { $0["type"] == "text" ? $0["text"]?.stringValue : nil }.joined()
        switch message.role {
        case .assistant:
            let calls: [JSONValue] = blocks.filter { $0["type"] == "tool_use" }.map { block in
                let arguments = (try? JSONEncoder.sortedKeys.encode(block["input"] ?? [:])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
                return ["id": block["id"] ?? "", "type": "function",
                        "function": ["name": block["name"] ?? "", "arguments": .string(arguments)]]
            }
            var turn: [String: JSONValue] = ["role": "assistant", "content": text.isEmpty ? .null : .string(text)]
            if !calls.isEmpty { turn["tool_calls"] = .array(calls) }
            return [.object(turn)]
        case .user:
            var out: [JSONValue] = blocks.filter { $0["type"] == "tool_result" }.map { block in
                ["role": "tool", "tool_call_id": block["tool_use_id"] ?? "", "content": .string(resultText(block["content"]))]
            }
            if !text.isEmpty { out.append(["role": "user", "content": .string(text)]) }
            return out
        }
    }

    /// A tool result's content as text: a string as it is, text blocks joined.
    private static func resultText(_ content: JSONValue?) -> String {
        switch content {
        case .string(let text)?: text
        case .array(let blocks)?: blocks.compactMap { $0["text"]?.stringValue }.joined(separator: "\n")
        default: ""
        }
    }

    /// A non-200 answer: `{"error": {message, type, code}}` (OpenAI, vLLM, llama.cpp, OpenRouter) or the flat
    /// `{"object": "error", message, type, code}` of older vLLM; the status decides when the body says nothing.
    static func httpError(status: HTTPResponseStatus, body: ByteBuffer?, requestId: String?) -> StreamError {
        let json = body.flatMap { try? JSONValue(parsing: String(buffer: $0)) }
        let detail = json?["error"] ?? json
        var error = OpenAITurnAccumulator.streamError(type: detail?["type"]?.stringValue, code: detail?["code"],
                                                      message: detail?["message"]?.stringValue, status: Int(status.code))
        if status.code == 529 { error = StreamError(code: .overloaded, message: "The model service is overloaded", retryable: true) }
        error.message += " (HTTP \(status.code))"
        // The provider's request id, when it is one (letters, digits, `._:-`): the client can quote it, the log has it.
        if let requestId = Redaction.requestId(requestId) {
            error.message += " (request \(requestId))"
            error.upstreamMessage = (error.upstreamMessage ?? "") + " (request \(requestId))"
        }
        return error
    }
}
