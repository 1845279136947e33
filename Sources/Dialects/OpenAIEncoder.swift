import ChatCore
import Foundation

/// A chat's events in OpenAI's Chat Completions shape: `chat.completion.chunk` SSE messages ending in
/// `data: [DONE]` when streamed, one `chat.completion` object at the end when not.
///
/// Text is a chunk the moment it arrives. A call of the client's tools is a `tool_calls` chunk when the model
/// starts it (id and name) and another with its whole `arguments` when the turn ends; Switchboard's own tools run
/// inside the loop and show only as SSE comments (`: tool get_employees completed in 12 ms`), which every SSE
/// client skips. Nothing is written before the model's first byte, so a failure before it can still be an HTTP
/// error (`answer(for:)`).
public struct OpenAIEncoder: DialectEncoding {
    public static var dialect: Dialect { .openAI }

    private let id: String
    private let created: Int
    public let streamed: Bool
    private let includeUsage: Bool
    private var state: AnswerState
    private var roleSent = false
    /// Whether tool calls are the client's (the chat declared tools): they are the answer's `tool_calls`.
    private let clientTools: Bool

    /// `id`: the completion's id (`chatcmpl-` is prefixed); `model`: who answers, until a fallback says otherwise.
    public init(id: String, model: String, stream: Bool, includeUsage: Bool, clientTools: Bool, created: Date = Date()) {
        self.id = "chatcmpl-" + id
        self.clientTools = clientTools
        self.created = Int(created.timeIntervalSince1970)
        streamed = stream
        self.includeUsage = includeUsage
        state = AnswerState(model: model)
    }

    public mutating func follow(_ decision: RoutingDecision) {
        state.follow(decision)
    }

    public mutating func content(for event: StreamEvent) -> [UInt8] {
        switch event {
        case .textChunk(let text):
            guard streamed else {
                state.text += text
                return []
            }
            let first = takeRole()
            return chunk { json in
                json.raw(first ? "{\"role\":\"assistant\"," : "{")
                json.raw("\"content\":")
                json.string(text)
                json.raw("}")
            }
        case .toolDetected(let tool, let toolUseId):
            return toolStarted(tool, id: toolUseId)
        case .complete(let completion):
            return streamed ? streamEnd(completion) : whole(completion)
        default:
            return []
        }
    }

    /// A client tool's call starting (streamed: its index, id and name, `arguments` empty); a Switchboard tool's, a
    /// comment.
    private mutating func toolStarted(_ tool: String, id toolUseId: String) -> [UInt8] {
        guard clientTools else { return streamed ? comment("tool_detected \(tool)") : [] }
        let index = state.toolCallIds.count
        state.toolCallIds.append(toolUseId)
        guard streamed else { return [] }
        let first = takeRole()
        return chunk { json in
            json.raw(first ? "{\"role\":\"assistant\"," : "{")
            json.raw("\"tool_calls\":[{\"index\":")
            json.integer(index)
            json.field("id", toolUseId)
            json.raw(",\"type\":\"function\",\"function\":{\"name\":")
            json.string(tool)
            json.raw(",\"arguments\":\"\"}}]}")
        }
    }

    /// Whether this delta is the first, which names the role.
    private mutating func takeRole() -> Bool {
        defer { roleSent = true }
        return !roleSent
    }

    private mutating func streamEnd(_ completion: Completion) -> [UInt8] {
        var bytes: [UInt8] = []
        for call in completion.toolCalls {
            let index = state.toolCallIds.firstIndex(of: call.id) ?? {
                state.toolCallIds.append(call.id)
                return state.toolCallIds.count - 1
            }()
            bytes += chunk { json in
                json.raw("{\"tool_calls\":[{\"index\":")
                json.integer(index)
                json.raw(",\"function\":{\"arguments\":")
                json.string(String(decoding: call.input.jsonBytes, as: UTF8.self))
                json.raw("}}]}")
            }
        }
        bytes += chunk(finishReason: Self.finishReason(completion)) { json in json.raw("{}") }
        if includeUsage {
            bytes += message { json in
                json.raw(",\"choices\":[]")
                usage(completion.usage, into: &json)
            }
        }
        bytes += Array("data: [DONE]\n\n".utf8)
        return bytes
    }

    /// The whole `chat.completion`.
    private func whole(_ completion: Completion) -> [UInt8] {
        var json = JSONWriter(capacity: 256 + state.text.utf8.count)
        json.raw("{\"id\":")
        json.string(id)
        json.raw(",\"object\":\"chat.completion\"")
        json.field("created", created)
        json.field("model", state.model)
        json.raw(",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":")
        if state.text.isEmpty && !completion.toolCalls.isEmpty { json.raw("null") } else { json.string(state.text) }
        if !completion.toolCalls.isEmpty {
            json.raw(",\"tool_calls\":[")
            for (index, call) in completion.toolCalls.enumerated() {
                if index > 0 { json.raw(",") }
                json.raw("{\"id\":")
                json.string(call.id)
                json.raw(",\"type\":\"function\",\"function\":{\"name\":")
                json.string(call.name)
                json.field("arguments", String(decoding: call.input.jsonBytes, as: UTF8.self))
                json.raw("}}")
            }
            json.raw("]")
        }
        json.raw(",\"refusal\":null}")
        json.field("finish_reason", Self.finishReason(completion))
        json.raw(",\"logprobs\":null}]")
        usage(completion.usage, into: &json)
        json.raw("}")
        return json.bytes
    }

    private func usage(_ usage: Usage, into json: inout JSONWriter) {
        json.raw(",\"usage\":{\"prompt_tokens\":")
        // OpenAI counts cached input in prompt_tokens; Switchboard's inputTokens leave it out.
        let prompt = usage.inputTokens + usage.cacheReadTokens + usage.cacheWriteTokens
        json.integer(prompt)
        json.field("completion_tokens", usage.outputTokens)
        json.field("total_tokens", prompt + usage.outputTokens)
        json.raw(",\"prompt_tokens_details\":{\"cached_tokens\":")
        json.integer(usage.cacheReadTokens)
        json.raw("}}")
    }

    /// One `data:` message of a chunk whose only choice has `delta` (written by `delta`) and `finish_reason`.
    private func chunk(finishReason: String? = nil, delta: (inout JSONWriter) -> Void) -> [UInt8] {
        message { json in
            json.raw(",\"choices\":[{\"index\":0,\"delta\":")
            delta(&json)
            json.raw(",\"logprobs\":null")
            json.field("finish_reason", orNull: finishReason)
            json.raw("}]")
        }
    }

    /// One `data:` message of a `chat.completion.chunk`; `body` writes the fields after `model`.
    private func message(_ body: (inout JSONWriter) -> Void) -> [UInt8] {
        var json = JSONWriter(capacity: 192)
        json.raw("data: {\"id\":")
        json.string(id)
        json.raw(",\"object\":\"chat.completion.chunk\"")
        json.field("created", created)
        json.field("model", state.model)
        body(&json)
        json.raw("}\n\n")
        return json.bytes
    }

    /// OpenAI's `finish_reason` for how the chat ended: `stop`, `length` (the token limit, or Switchboard's
    /// iteration limit while the model still wanted tools, or the key's budget spent between its model calls), `tool_calls`
    /// (the client's tools), `content_filter`.
    public static func finishReason(_ completion: Completion) -> String {
        if !completion.toolCalls.isEmpty { return "tool_calls" }
        return switch completion.stopReason {
        case .maxTokens, .maxIterations, .budget: "length"
        case .refusal: "content_filter"
        default: "stop"
        }
    }
}
