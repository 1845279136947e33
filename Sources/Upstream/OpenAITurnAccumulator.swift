import ChatCore
import Foundation

/// Builds one model turn from an OpenAI-compatible Chat Completions stream (`data:` chunks, then `[DONE]`), with
/// the tolerance the servers in use call for (`shared/OPENAI_STREAMING.md` §5–§7): OpenAI, Ollama, vLLM,
/// llama-server, LiteLLM, Groq, Mistral and Gemini's compatibility layer each cut tool calls differently.
///
/// The turn comes out in the same shape as Anthropic's (text, thinking and `tool_use` blocks, a `StopReason`,
/// `Usage`), so the agent loop and the events do not know which provider answered.
struct OpenAITurnAccumulator: TurnAccumulating {
    /// One tool call being assembled.
    private struct Slot {
        var id: String?
        var name = ""
        var arguments = ""
        /// `toolUseStarted` was told.
        var announced = false
        /// Whether `arguments` parsed as a whole object when it had `checkedLength` bytes: each fragment may ask,
        /// and the answer is kept until the arguments grow, so asking costs nothing per fragment.
        var checkedLength = -1
        var wasWhole = false

        mutating func isWhole() -> Bool {
            let length = arguments.utf8.count
            if length != checkedLength {
                checkedLength = length
                wasWhole = OpenAITurnAccumulator.parseArguments(arguments) != nil
            }
            return wasWhole
        }
    }

    /// Tool calls in one turn (their bytes count in `TurnSize`, as for Anthropic).
    static let maxToolCalls = 128

    private var text = ""
    private var reasoning = ""
    private var size = TurnSize()
    private var slots: [Slot] = []
    /// Which slot a wire `index` currently points at (a server may start a new call at a used index).
    private var slotOfIndex: [Int: Int] = [:]
    private var finishReason: String?
    private var usage = Usage()
    private var responseModel: String?
    private var responseId: String?
    /// `data: [DONE]` arrived: the stream is whole.
    private(set) var done = false

    mutating func handle(_ event: ServerSentEvent, emit: (ModelStreamEvent) -> Void) throws(StreamError) {
        try handle(event.data, emit: emit)
    }

    var isComplete: Bool { done }

    /// Handles one SSE event's data, telling `emit` what the pipeline should hear about.
    mutating func handle(_ data: String, emit: (ModelStreamEvent) -> Void) throws(StreamError) {
        if data == "[DONE]" {
            done = true
            return
        }
        let chunk: JSONValue
        do {
            chunk = try JSONValue(parsing: data)
        } catch {
            throw StreamError(code: .upstreamProtocolError, message: "The model service sent a chunk that could not be read.",
                              retryable: true)
        }
        if let error = chunk["error"], case .object = error {
            throw Self.streamError(type: error["type"]?.stringValue, code: error["code"], message: error["message"]?.stringValue)
        }
        if chunk["object"]?.stringValue == "error" {
            throw Self.streamError(type: chunk["type"]?.stringValue, code: chunk["code"], message: chunk["message"]?.stringValue)
        }
        if let usage = chunk["usage"], case .object = usage { record(usage) }
        if responseModel == nil {
            responseModel = chunk["model"]?.stringValue
            responseId = chunk["id"]?.stringValue
        }
        guard case .array(let choices)? = chunk["choices"] else { return }
        for choice in choices {
            // One choice is asked for; a server that sends more is read for the first only.
            guard (choice["index"]?.intValue ?? 0) == 0 else { continue }
            if let delta = choice["delta"] { try take(delta, emit: emit) }
            if let reason = choice["finish_reason"]?.stringValue { finishReason = reason }
        }
    }

    private mutating func take(_ delta: JSONValue, emit: (ModelStreamEvent) -> Void) throws(StreamError) {
        for key in ["content", "refusal"] {
            guard let piece = delta[key]?.stringValue, !piece.isEmpty else { continue }
            try size.add(piece.utf8.count, to: .text)
            text += piece
            emit(.text(piece))
        }
        if let thought = delta["reasoning_content"]?.stringValue ?? delta["reasoning"]?.stringValue, !thought.isEmpty {
            try size.add(thought.utf8.count, to: .text)
            reasoning += thought
        }
        guard case .array(let fragments)? = delta["tool_calls"] else { return }
        for fragment in fragments { try take(toolFragment: fragment, emit: emit) }
    }

    private mutating func take(toolFragment fragment: JSONValue, emit: (ModelStreamEvent) -> Void) throws(StreamError) {
        let index = fragment["index"]?.intValue
        let id = fragment["id"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        let name = fragment["function"]?["name"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        var position: Int?
        if let index {
            position = slotOfIndex[index]
        } else if let id {
            position = slots.lastIndex { $0.id == id }
        } else {
            position = slots.indices.last
        }
        // A different id where a call is under way starts a new call only if the fragment names its function or
        // the call so far is whole (Ollama puts parallel calls all at index 0); otherwise the server changed the
        // id mid-call (LM Studio, Kimi) and the new one is ignored.
        if let current = position, let id, let known = slots[current].id, known != id,
           name != nil || slots[current].isWhole() {
            position = nil
        }
        let slot: Int
        if let position {
            slot = position
        } else {
            guard slots.count < Self.maxToolCalls else {
                throw StreamError(code: .upstreamProtocolError, message: "The model's answer passed \(Self.maxToolCalls) tool calls in one turn.",
                                  retryable: false)
            }
            slots.append(Slot())
            slot = slots.count - 1
        }
        if let index { slotOfIndex[index] = slot }
        if slots[slot].id == nil, let id {
            try size.add(id.utf8.count, to: .other)
            slots[slot].id = id
        }
        if let name, name != slots[slot].name {
            // Set once; an equal repeat (llama-server, vLLM, LiteLLM) is skipped, anything else is a name in pieces.
            try size.add(name.utf8.count, to: .other)
            slots[slot].name += name
        }
        let arguments: String? = switch fragment["function"]?["arguments"] {
        case .string(let text)?: text
        case let value? where value != .null:  // an object where a string belongs
            (try? JSONEncoder.sortedKeys.encode(value)).map { String(decoding: $0, as: UTF8.self) }
        default: nil
        }
        if let arguments, !arguments.isEmpty {
            // A whole call repeated at the end (LiteLLM) is not appended to itself. Compared only when the fragment
            // is at least half the arguments so far, so the comparisons cost no more than the bytes that arrived.
            let repeated = arguments.utf8.count * 2 >= slots[slot].arguments.utf8.count && slots[slot].isWhole()
                && Self.parseArguments(arguments).map { $0 == Self.parseArguments(slots[slot].arguments) } == true
            if !repeated {
                try size.add(arguments.utf8.count, to: .toolInput)
                slots[slot].arguments += arguments
            }
        }
        if !slots[slot].announced, let id = slots[slot].id, !slots[slot].name.isEmpty {
            slots[slot].announced = true
            emit(.toolUseStarted(id: id, name: slots[slot].name))
        }
    }

    /// `prompt_tokens` counts cached tokens, Anthropic's `input_tokens` does not: the cached part is taken out.
    /// Each count is clamped (`Usage.tokenCount`); the cached part is at most the prompt.
    private mutating func record(_ wire: JSONValue) {
        let prompt = Usage.tokenCount(wire["prompt_tokens"]) ?? 0
        let cached = min(Usage.tokenCount(wire["prompt_tokens_details"]?["cached_tokens"]) ?? 0, prompt)
        usage = Usage(inputTokens: prompt - cached, outputTokens: Usage.tokenCount(wire["completion_tokens"]) ?? 0,
                      cacheReadTokens: cached)
    }

    /// The finished turn, once the stream ended (`[DONE]`, or the end of the body after a finish reason, as older
    /// llama-server builds do); an error when it was cut before either.
    func finish() throws(StreamError) -> ModelTurn {
        guard done || finishReason != nil else {
            throw StreamError(code: .upstreamStreamEnded, message: "The model's stream ended before the message was complete.",
                              retryable: true)
        }
        var content: [JSONValue] = []
        if !reasoning.isEmpty {
            // No signature: kept for the record, never sent back upstream.
            content.append(.object(["type": .string("thinking"), "thinking": .string(reasoning)]))
        }
        if !text.isEmpty { content.append(.object(["type": .string("text"), "text": .string(text)])) }
        var toolUses: [ToolUse] = []
        // A turn cut by the token limit never runs a tool: its last call may be incomplete.
        if finishReason != "length" {
            for (number, slot) in slots.enumerated() {
                guard !slot.name.isEmpty, let input = Self.parseArguments(slot.arguments) else { continue }
                let use = ToolUse(id: slot.id ?? "call_\(number)", name: slot.name, input: input)
                toolUses.append(use)
                content.append(.object(["type": .string("tool_use"), "id": .string(use.id), "name": .string(use.name),
                                         "input": input]))
            }
        }
        let stopReason: StopReason = if !toolUses.isEmpty {
            .toolUse  // servers say `stop` beside tool calls (a named tool_choice, Ollama, Gemini)
        } else {
            switch finishReason {
            case "length": .maxTokens
            case "content_filter": .refusal
            case nil, "stop", "tool_calls", "function_call": .endTurn
            case let other?: .other(other)
            }
        }
        return ModelTurn(content: content, toolUses: toolUses, stopReason: stopReason, usage: usage, responseModel: responseModel,
                         responseId: responseId)
    }

    /// A call's arguments: the joined fragments parsed as a JSON object (`{}` when there were none); `nil` when
    /// they are not one (never run).
    static func parseArguments(_ json: String) -> JSONValue? {
        AnthropicTurnAccumulator.parseInput(json)
    }

    /// Our error for an OpenAI-style error object (a chunk after the 200, or an HTTP error body). `code` is a
    /// string at OpenAI and a number (an HTTP status) at vLLM, llama.cpp and OpenRouter.
    static func streamError(type: String?, code: JSONValue?, message: String?, status: Int? = nil) -> StreamError {
        // Switchboard's words for the client; the provider's own message goes to the log only, and a rejected
        // request keeps its reason in our words (`RejectionReason`).
        let hint = RejectionReason.hint(message)
        let numeric = code?.intValue ?? status
        switch code?.stringValue ?? type {
        case "insufficient_quota":
            return StreamError(code: .rateLimited, message: "The model service's quota is used up", retryable: false, upstreamMessage: message)
        case "rate_limit_exceeded", "rate_limit_error", "tokens", "requests":
            return StreamError(code: .rateLimited, message: "The model service's rate limit was reached", retryable: true, upstreamMessage: message)
        case "invalid_api_key", "authentication_error", "permission_error":
            return StreamError(code: .upstreamAuth, message: "The model service refused the API key", retryable: false, upstreamMessage: message)
        case "context_length_exceeded", "invalid_request_error", "model_not_found", "not_found_error":
            return StreamError(code: .upstreamRejected, message: "The model service rejected the request\(hint)", retryable: false,
                               upstreamMessage: message)
        case "overloaded", "overloaded_error":
            return StreamError(code: .overloaded, message: "The model service is overloaded", retryable: true, upstreamMessage: message)
        default:
            switch numeric {
            case 429?: return StreamError(code: .rateLimited, message: "The model service's rate limit was reached", retryable: true, upstreamMessage: message)
            case 401?, 403?: return StreamError(code: .upstreamAuth, message: "The model service refused the API key", retryable: false, upstreamMessage: message)
            case 400?, 404?, 413?, 422?:
                return StreamError(code: .upstreamRejected, message: "The model service rejected the request\(hint)", retryable: false,
                               upstreamMessage: message)
            default:
                let retryable = numeric.map { $0 >= 500 || $0 == 408 || $0 == 409 } ?? true
                return StreamError(code: .upstreamError, message: "The model service failed", retryable: retryable, upstreamMessage: message)
            }
        }
    }
}
