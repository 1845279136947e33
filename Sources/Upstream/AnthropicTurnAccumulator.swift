import ChatCore
import Foundation

/// Builds one model turn from Anthropic's stream events, as the SDK accumulators do.
///
/// Text deltas are joined per block, tool input fragments are joined and parsed only at `content_block_stop`,
/// thinking blocks keep their signature, unknown events and block types are ignored. A tool call whose block
/// never stopped (a `max_tokens` cut) is not a tool call.
struct AnthropicTurnAccumulator: TurnAccumulating {
    private struct Block {
        var start: [String: JSONValue]
        var text = ""
        var partialJSON = ""
        var thinking = ""
        var signature = ""
        var citations: [JSONValue] = []
        var stopped = false

        var type: String { start["type"]?.stringValue ?? "" }
    }

    /// Content blocks in one turn (a real turn has a handful; tool calls are at most a few dozen).
    static let maxBlocks = 256

    private var blocks: [Int: Block] = [:]
    private var size = TurnSize()
    private var order: [Int] = []
    private var stopReason: StopReason?
    private var usage = Usage()
    private var responseModel: String?
    private var responseId: String?
    private(set) var messageStopped = false

    /// Handles one SSE event; returns what the pipeline should hear about, if anything.
    mutating func handle(_ event: ServerSentEvent) throws(StreamError) -> ModelStreamEvent? {
        let wire: JSONValue
        do {
            wire = try JSONValue(parsing: event.data)
        } catch {
            // Unknown shapes of unknown events are skipped; a known event we cannot read is an upstream fault.
            if let name = event.event, !Self.knownEvents.contains(name) { return nil }
            throw StreamError(code: .upstreamProtocolError, message: "The model service sent an event that could not be read.",
                              retryable: true)
        }
        let index = wire["index"]?.intValue
        switch wire["type"]?.stringValue ?? event.event {
        case "message_start":
            if let counts = wire["message"]?["usage"] { record(counts, output: false) }
            responseModel = wire["message"]?["model"]?.stringValue
            responseId = wire["message"]?["id"]?.stringValue
        case "content_block_start":
            guard let index, case .object(let start)? = wire["content_block"] else { return nil }
            try size.add(event.data.utf8.count, to: .other)
            if blocks[index] == nil {
                guard order.count < Self.maxBlocks else {
                    throw StreamError(code: .upstreamProtocolError, message: "The model's answer passed \(Self.maxBlocks) content blocks in one turn.",
                                      retryable: false)
                }
                order.append(index)
            }
            blocks[index] = Block(start: start)
            if start["type"]?.stringValue == "tool_use", let id = start["id"]?.stringValue, let name = start["name"]?.stringValue {
                return .toolUseStarted(id: id, name: name)
            }
        case "content_block_delta":
            guard let index, let delta = wire["delta"], blocks[index] != nil else { return nil }
            switch delta["type"]?.stringValue {
            case "text_delta":
                guard let text = delta["text"]?.stringValue, !text.isEmpty else { return nil }
                try size.add(text.utf8.count, to: .text)
                blocks[index]!.text += text
                return .text(text)
            case "input_json_delta":
                let fragment = delta["partial_json"]?.stringValue ?? ""
                try size.add(fragment.utf8.count, to: .toolInput)
                blocks[index]!.partialJSON += fragment
            case "thinking_delta":
                guard let thinking = delta["thinking"]?.stringValue, !thinking.isEmpty else { return nil }
                try size.add(thinking.utf8.count, to: .text)
                blocks[index]!.thinking += thinking
                return .thinking(thinking)
            case "signature_delta":
                let signature = delta["signature"]?.stringValue ?? ""
                try size.add(signature.utf8.count, to: .other)
                blocks[index]!.signature += signature
            case "citations_delta":
                if let citation = delta["citation"] {
                    try size.add(event.data.utf8.count, to: .other)
                    blocks[index]!.citations.append(citation)
                }
            default:
                break
            }
        case "content_block_stop":
            if let index { blocks[index]?.stopped = true }
        case "message_delta":
            if let reason = wire["delta"]?["stop_reason"]?.stringValue { stopReason = StopReason(rawValue: reason) }
            // Usage here is cumulative: overwrite (the input and cache counts only come on some responses).
            if let counts = wire["usage"] { record(counts, output: true) }
        case "message_stop":
            messageStopped = true
        case "error":
            throw Self.streamError(type: wire["error"]?["type"]?.stringValue, message: wire["error"]?["message"]?.stringValue)
        default:
            break // ping and event types added later
        }
        return nil
    }

    /// Takes the counts present in a `usage` object, each clamped (`Usage.tokenCount`); `message_start`'s
    /// `output_tokens` is a placeholder, so it is taken from `message_delta` only.
    private mutating func record(_ counts: JSONValue, output: Bool) {
        if let input = Usage.tokenCount(counts["input_tokens"]) { usage.inputTokens = input }
        if let read = Usage.tokenCount(counts["cache_read_input_tokens"]) { usage.cacheReadTokens = read }
        if let written = Usage.tokenCount(counts["cache_creation_input_tokens"]) { usage.cacheWriteTokens = written }
        if output, let tokens = Usage.tokenCount(counts["output_tokens"]) { usage.outputTokens = tokens }
    }

    mutating func handle(_ event: ServerSentEvent, emit: (ModelStreamEvent) -> Void) throws(StreamError) {
        if let heard = try handle(event) { emit(heard) }
    }

    var isComplete: Bool { messageStopped }

    /// The finished turn; an error when the stream ended before `message_stop`.
    func finish() throws(StreamError) -> ModelTurn {
        guard messageStopped else {
            throw StreamError(code: .upstreamStreamEnded, message: "The model's stream ended before the message was complete.",
                              retryable: true)
        }
        var content: [JSONValue] = []
        var toolUses: [ToolUse] = []
        for index in order {
            guard let block = blocks[index] else { continue }
            var fields = block.start
            switch block.type {
            case "text":
                fields["text"] = .string(block.text)
                if !block.citations.isEmpty { fields["citations"] = .array(block.citations) }
            case "thinking":
                fields["thinking"] = .string(block.thinking)
                fields["signature"] = .string(block.signature)
            case "tool_use", "server_tool_use":
                let input = Self.parseInput(block.partialJSON)
                if block.stopped, let input {
                    fields["input"] = input
                    if block.type == "tool_use", let id = fields["id"]?.stringValue, let name = fields["name"]?.stringValue {
                        toolUses.append(ToolUse(id: id, name: name, input: input))
                    }
                } else {
                    // Cut off: never run, and never sent back as if it were whole.
                    continue
                }
            default:
                break
            }
            content.append(.object(fields))
        }
        return ModelTurn(content: content, toolUses: toolUses, stopReason: stopReason ?? .endTurn, usage: usage,
                         responseModel: responseModel, responseId: responseId)
    }

    /// A tool's input: the joined fragments parsed as a JSON object (`{}` when there were none).
    static func parseInput(_ json: String) -> JSONValue? {
        if json.trimmingCharacters(in: .whitespaces).isEmpty { return .object([:]) }
        guard let value = try? JSONValue(parsing: json), case .object = value else { return nil }
        return value
    }

    static let knownEvents: Set<String> = ["message_start", "content_block_start", "content_block_delta",
                                           "content_block_stop", "message_delta", "message_stop", "ping", "error"]

    /// Our error for an Anthropic error type (from an `error` event or an HTTP error body).
    static func streamError(type: String?, message: String?, status: Int? = nil) -> StreamError {
        // Switchboard's words for the client; the provider's own message goes to the log only, and a rejected
        // request keeps its reason in our words (`RejectionReason`).
        let hint = RejectionReason.hint(message)
        switch type {
        case "overloaded_error":
            return StreamError(code: .overloaded, message: "The model service is overloaded", retryable: true, upstreamMessage: message)
        case "rate_limit_error":
            return StreamError(code: .rateLimited, message: "The model service's rate limit was reached", retryable: true, upstreamMessage: message)
        case "api_error", "timeout_error":
            return StreamError(code: .upstreamError, message: "The model service failed", retryable: true, upstreamMessage: message)
        case "authentication_error", "permission_error":
            return StreamError(code: .upstreamAuth, message: "The model service refused the API key", retryable: false, upstreamMessage: message)
        case "invalid_request_error", "not_found_error", "request_too_large":
            return StreamError(code: .upstreamRejected, message: "The model service rejected the request\(hint)", retryable: false,
                               upstreamMessage: message)
        default:
            let retryable = status.map { $0 >= 500 || $0 == 408 || $0 == 409 || $0 == 429 } ?? false
            return StreamError(code: .upstreamError, message: "The model service answered with an error", retryable: retryable, upstreamMessage: message)
        }
    }
}
