import ChatCore

/// A chat's events in Anthropic's Messages shape: the native event sequence when streamed (`message_start`,
/// `ping`, `content_block_start`/`_delta`/`_stop`, `message_delta`, `message_stop`; `error` after a failure), one
/// `message` object at the end when not.
///
/// Text is a `text_delta` the moment it arrives; text written around Switchboard's own tools (which run inside the
/// loop and show only as SSE comments) goes in one text block per model turn. The client's tools' calls are
/// `tool_use` blocks sent whole (start, the whole input as one `input_json_delta`, stop) when the turn ends.
/// Nothing is written before the model's first byte, so a failure before it can still be an HTTP error
/// (`answer(for:)`).
public struct AnthropicEncoder: DialectEncoding {
    public static var dialect: Dialect { .anthropic }

    private let id: String
    public let streamed: Bool
    private let clientTools: Bool
    private var state: AnswerState
    private var started = false
    /// The index of the text block open now, if any.
    private var openText: Int?
    private var nextIndex = 0
    /// An answer that is not streamed: its text blocks.
    private var texts: [String] = []

    /// `id`: the message's id (`msg_` is prefixed); `model`: who answers, until a fallback says otherwise.
    public init(id: String, model: String, stream: Bool, clientTools: Bool) {
        self.id = "msg_" + id
        streamed = stream
        self.clientTools = clientTools
        state = AnswerState(model: model)
    }

    public mutating func follow(_ decision: RoutingDecision) {
        state.follow(decision)
    }

    public mutating func content(for event: StreamEvent) -> [UInt8] {
        switch event {
        case .textChunk(let text):
            guard streamed else {
                if openText == nil {
                    openText = texts.count
                    texts.append("")
                }
                texts[texts.count - 1] += text
                return []
            }
            var bytes = start()
            if openText == nil {
                openText = nextIndex
                nextIndex += 1
                bytes += message("content_block_start") { json in
                    json.field("index", openText!)
                    json.raw(",\"content_block\":{\"type\":\"text\",\"text\":\"\"}")
                }
            }
            bytes += message("content_block_delta") { json in
                json.field("index", openText!)
                json.raw(",\"delta\":{\"type\":\"text_delta\",\"text\":")
                json.string(text)
                json.raw("}")
            }
            return bytes
        case .toolDetected(let tool, _):
            // The text before a tool call is a block of its own.
            var bytes = streamed ? closeText() : []
            openText = nil
            if streamed && !clientTools { bytes += comment("tool_detected \(tool)") }
            return bytes
        case .complete(let completion):
            return streamed ? streamEnd(completion) : whole(completion)
        default:
            return []
        }
    }

    /// `message_start` and a `ping`, before the first block.
    private mutating func start() -> [UInt8] {
        guard !started else { return [] }
        started = true
        var bytes = message("message_start") { json in
            json.raw(",\"message\":{\"id\":")
            json.string(id)
            json.raw(",\"type\":\"message\",\"role\":\"assistant\"")
            json.field("model", state.model)
            json.raw(",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,")
            json.raw("\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}")
        }
        bytes += message("ping") { _ in }
        return bytes
    }

    private mutating func closeText() -> [UInt8] {
        guard let index = openText else { return [] }
        openText = nil
        return message("content_block_stop") { json in json.field("index", index) }
    }

    private mutating func streamEnd(_ completion: Completion) -> [UInt8] {
        var bytes = start()
        bytes += closeText()
        for call in completion.toolCalls {
            let index = nextIndex
            nextIndex += 1
            bytes += message("content_block_start") { json in
                json.field("index", index)
                json.raw(",\"content_block\":{\"type\":\"tool_use\",\"id\":")
                json.string(call.id)
                json.field("name", call.name)
                json.raw(",\"input\":{}}")
            }
            bytes += message("content_block_delta") { json in
                json.field("index", index)
                json.raw(",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":")
                json.string(String(decoding: call.input.jsonBytes, as: UTF8.self))
                json.raw("}")
            }
            bytes += message("content_block_stop") { json in json.field("index", index) }
        }
        bytes += message("message_delta") { json in
            json.raw(",\"delta\":{\"stop_reason\":")
            json.string(Self.stopReason(completion))
            json.raw(",\"stop_sequence\":null}")
            usage(completion.usage, into: &json)
        }
        bytes += message("message_stop") { _ in }
        return bytes
    }

    /// The whole `message`.
    private func whole(_ completion: Completion) -> [UInt8] {
        var json = JSONWriter(capacity: 256 + texts.reduce(0) { $0 + $1.utf8.count })
        json.raw("{\"id\":")
        json.string(id)
        json.raw(",\"type\":\"message\",\"role\":\"assistant\"")
        json.field("model", state.model)
        json.raw(",\"content\":[")
        var first = true
        for text in texts where !text.isEmpty {
            if !first { json.raw(",") }
            first = false
            json.raw("{\"type\":\"text\",\"text\":")
            json.string(text)
            json.raw("}")
        }
        for call in completion.toolCalls {
            if !first { json.raw(",") }
            first = false
            json.raw("{\"type\":\"tool_use\",\"id\":")
            json.string(call.id)
            json.field("name", call.name)
            json.raw(",\"input\":")
            json.value(call.input)
            json.raw("}")
        }
        json.raw("]")
        json.field("stop_reason", Self.stopReason(completion))
        json.raw(",\"stop_sequence\":null")
        usage(completion.usage, into: &json)
        json.raw("}")
        return json.bytes
    }

    private func usage(_ usage: Usage, into json: inout JSONWriter) {
        json.raw(",\"usage\":{\"input_tokens\":")
        json.integer(usage.inputTokens)
        json.field("output_tokens", usage.outputTokens)
        json.field("cache_read_input_tokens", usage.cacheReadTokens)
        json.field("cache_creation_input_tokens", usage.cacheWriteTokens)
        json.raw("}")
    }

    /// One SSE message: `event: TYPE` and `data: {"type":"TYPE"…}`; `body` writes the fields after `type`.
    private func message(_ type: StaticString, _ body: (inout JSONWriter) -> Void) -> [UInt8] {
        var json = JSONWriter(capacity: 160)
        json.raw("event: ")
        json.raw(type)
        json.raw("\ndata: {\"type\":\"")
        json.raw(type)
        json.raw("\"")
        body(&json)
        json.raw("}\n\n")
        return json.bytes
    }

    /// Anthropic's `stop_reason` for how the chat ended: the model's own, `tool_use` for the client's tools, and
    /// `max_tokens` when Switchboard's iteration limit, or the key's budget, cut a model that still wanted tools.
    public static func stopReason(_ completion: Completion) -> String {
        if !completion.toolCalls.isEmpty { return "tool_use" }
        return switch completion.stopReason {
        case .maxIterations, .budget: "max_tokens"
        case .advise: "end_turn"
        case let reason: reason.rawValue
        }
    }
}
