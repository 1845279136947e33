import ChatCore
import Dialects
import Foundation
import Testing

/// The SSE messages of an encoded stream: each one's `event:` name (if any) and its `data:` JSON (or text).
private func messages(_ bytes: [UInt8]) -> [(event: String?, data: Any?)] {
    String(decoding: bytes, as: UTF8.self).components(separatedBy: "\n\n").filter { !$0.isEmpty && !$0.hasPrefix(":") }.map { block in
        var event: String?
        var data: Any?
        for line in block.split(separator: "\n") {
            if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
            if line.hasPrefix("data: ") {
                let text = String(line.dropFirst(6))
                data = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) ?? text
            }
        }
        return (event, data)
    }
}

private func encode(_ encoder: some EventEncoding, _ events: [StreamEvent]) -> [[UInt8]] {
    var encoder = encoder
    return events.map { encoder.bytes(for: $0) }
}

private let done = Completion(iterations: 1, stopReason: .endTurn, totalTimeMs: 5,
                              usage: Usage(inputTokens: 20, outputTokens: 7, cacheReadTokens: 5))

@Suite("A chat's events in the SDKs' shapes")
struct DialectEncoderTests {
    @Test("OpenAI, streamed: nothing before the first text, the role once, a finish chunk, the usage, [DONE]")
    func openAIStream() throws {
        let parts = encode(OpenAIEncoder(id: "abc", model: "claude-haiku-4-5", stream: true, includeUsage: true, clientTools: false),
                           [.sessionStart(sessionId: "s"), .iterationStart(iteration: 1), .textChunk("Hel"), .textChunk("lo"), .complete(done)])
        #expect(parts[0].isEmpty && parts[1].isEmpty, "the head waits for the model's first byte")
        let first = try #require(messages(parts[2]).first?.data as? [String: Any])
        #expect(first["id"] as? String == "chatcmpl-abc" && first["object"] as? String == "chat.completion.chunk")
        #expect(first["model"] as? String == "claude-haiku-4-5")
        let delta = ((first["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any]) ?? [:]
        #expect(delta["role"] as? String == "assistant" && delta["content"] as? String == "Hel")
        let second = ((messages(parts[3]).first?.data as? [String: Any])?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any]
        #expect(second?["role"] == nil && second?["content"] as? String == "lo")
        let end = messages(parts[4])
        #expect(end.count == 3)
        let finish = (end[0].data as? [String: Any])?["choices"] as? [[String: Any]]
        #expect(finish?.first?["finish_reason"] as? String == "stop")
        let usage = (end[1].data as? [String: Any])?["usage"] as? [String: Any]
        #expect(usage?["prompt_tokens"] as? Int == 25 && usage?["completion_tokens"] as? Int == 7 && usage?["total_tokens"] as? Int == 32)
        #expect(((end[1].data as? [String: Any])?["choices"] as? [Any])?.isEmpty == true)
        #expect(end[2].data as? String == "[DONE]")
    }

    @Test("OpenAI: a fallback's model names the answer; Switchboard's tools are comments only")
    func openAIFallbackAndServerTools() throws {
        var decision = RoutingDecision(complexity: "simple", score: 0, route: "fast", action: .stream, provider: "anthropic",
                                       model: "claude-haiku-4-5", message: nil, matchedRules: [], rulesVersion: "v")
        decision.fallbackFrom = "local/llama"
        let parts = encode(OpenAIEncoder(id: "x", model: "llama", stream: true, includeUsage: false, clientTools: false),
                           [.routing(decision), .toolDetected(tool: "get_employees", toolUseId: "t"), .toolsExecuting(tools: ["get_employees"]),
                            .textChunk("Hi"), .complete(done)])
        #expect(parts[0].isEmpty)
        #expect(String(decoding: parts[1], as: UTF8.self) == ": tool_detected get_employees\n\n")
        #expect(messages(parts[1]).isEmpty && messages(parts[2]).isEmpty)
        #expect((messages(parts[3]).first?.data as? [String: Any])?["model"] as? String == "claude-haiku-4-5")
        #expect(messages(parts[4]).count == 2, "no usage chunk unless asked")
    }

    @Test("OpenAI: the client's tool calls stream as tool_calls (name first, arguments when the turn ends), finish_reason tool_calls")
    func openAIClientTools() throws {
        let call = ToolUse(id: "toolu_1", name: "get_weather", input: ["city": "Paris"])
        let completion = Completion(iterations: 1, stopReason: .toolUse, totalTimeMs: 1, usage: Usage(), toolCalls: [call])
        let parts = encode(OpenAIEncoder(id: "x", model: "m", stream: true, includeUsage: false, clientTools: true),
                           [.toolDetected(tool: "get_weather", toolUseId: "toolu_1"), .complete(completion)])
        let started = ((messages(parts[0]).first?.data as? [String: Any])?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any]
        let startedCall = (started?["tool_calls"] as? [[String: Any]])?.first
        #expect(startedCall?["index"] as? Int == 0 && startedCall?["id"] as? String == "toolu_1")
        #expect((startedCall?["function"] as? [String: Any])?["name"] as? String == "get_weather")
        let end = messages(parts[1])
        let arguments = (((end[0].data as? [String: Any])?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["tool_calls"]
            as? [[String: Any]]
        #expect((arguments?.first?["function"] as? [String: Any])?["arguments"] as? String == #"{"city":"Paris"}"#)
        #expect((((end[1].data as? [String: Any])?["choices"] as? [[String: Any]])?.first?["finish_reason"]) as? String == "tool_calls")

        // Not streamed: one chat.completion with content null and the call.
        let whole = encode(OpenAIEncoder(id: "x", model: "m", stream: false, includeUsage: false, clientTools: true),
                           [.toolDetected(tool: "get_weather", toolUseId: "toolu_1"), .complete(completion)])
        #expect(whole[0].isEmpty)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(whole[1])) as? [String: Any])
        let message = ((object["choices"] as? [[String: Any]])?.first?["message"]) as? [String: Any]
        #expect(message?["content"] is NSNull)
        #expect(((message?["tool_calls"] as? [[String: Any]])?.first?["function"] as? [String: Any])?["arguments"] as? String
                == #"{"city":"Paris"}"#)
    }

    @Test("Anthropic, streamed: the Messages API's event sequence, one text block per model turn, usage in message_delta")
    func anthropicStream() throws {
        let events: [StreamEvent] = [.sessionStart(sessionId: "s"), .iterationStart(iteration: 1), .textChunk("Looking."),
                                     .toolDetected(tool: "get_employees", toolUseId: "t"), .iterationStart(iteration: 2), .textChunk(" Three"),
                                     .textChunk(" people."), .complete(done)]
        let bytes = encode(AnthropicEncoder(id: "abc", model: "claude-haiku-4-5", stream: true, clientTools: false), events)
        #expect(bytes[0].isEmpty && bytes[1].isEmpty)
        let all = messages(bytes.flatMap { $0 })
        #expect(all.map(\.event) == ["message_start", "ping", "content_block_start", "content_block_delta", "content_block_stop",
                                      "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
                                      "message_delta", "message_stop"])
        #expect(all.allSatisfy { ($0.data as? [String: Any])?["type"] as? String == $0.event })
        let start = (all[0].data as? [String: Any])?["message"] as? [String: Any]
        #expect(start?["id"] as? String == "msg_abc" && start?["model"] as? String == "claude-haiku-4-5")
        #expect((all[5].data as? [String: Any])?["index"] as? Int == 1)
        let delta = all[9].data as? [String: Any]
        #expect((delta?["delta"] as? [String: Any])?["stop_reason"] as? String == "end_turn")
        #expect((delta?["usage"] as? [String: Any])?["output_tokens"] as? Int == 7)
    }

    @Test("Anthropic: the client's tool calls are whole tool_use blocks, stop_reason tool_use; not streamed, one message")
    func anthropicClientTools() throws {
        let call = ToolUse(id: "toolu_1", name: "get_weather", input: ["city": "Paris"])
        let completion = Completion(iterations: 1, stopReason: .toolUse, totalTimeMs: 1, usage: Usage(), toolCalls: [call])
        let events: [StreamEvent] = [.textChunk("Checking."), .toolDetected(tool: "get_weather", toolUseId: "toolu_1"), .complete(completion)]
        let all = messages(encode(AnthropicEncoder(id: "a", model: "m", stream: true, clientTools: true), events).flatMap { $0 })
        #expect(all.map(\.event) == ["message_start", "ping", "content_block_start", "content_block_delta", "content_block_stop",
                                      "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"])
        let block = (all[5].data as? [String: Any])?["content_block"] as? [String: Any]
        #expect(block?["type"] as? String == "tool_use" && block?["name"] as? String == "get_weather")
        #expect(((all[6].data as? [String: Any])?["delta"] as? [String: Any])?["partial_json"] as? String == #"{"city":"Paris"}"#)
        #expect((((all[8].data as? [String: Any])?["delta"]) as? [String: Any])?["stop_reason"] as? String == "tool_use")

        let whole = encode(AnthropicEncoder(id: "a", model: "m", stream: false, clientTools: true), events)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(whole[2])) as? [String: Any])
        let content = object["content"] as? [[String: Any]]
        #expect(content?.map { $0["type"] as? String } == ["text", "tool_use"])
        #expect(object["stop_reason"] as? String == "tool_use" && object["type"] as? String == "message")
    }

    @Test("errors: before the first byte a status and the dialect's body; after it, the dialect's in-stream error")
    func errors() throws {
        let limited = StreamError(code: .rateLimited, message: "The model service is rate limiting.", retryable: true)
        let openAI = try #require(OpenAIEncoder(id: "x", model: "m", stream: true, includeUsage: false, clientTools: false).answer(for: limited))
        #expect(openAI.status == 429 && openAI.retryAfter != nil)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(openAI.body)) as? [String: Any])
        #expect((body["error"] as? [String: Any])?["code"] as? String == "rate_limited")
        #expect((body["error"] as? [String: Any])?["type"] as? String == "rate_limit_error")
        let anthropic = try #require(AnthropicEncoder(id: "x", model: "m", stream: true, clientTools: false).answer(for: limited))
        let anthropicBody = try #require(try JSONSerialization.jsonObject(with: Data(anthropic.body)) as? [String: Any])
        #expect(anthropicBody["type"] as? String == "error")
        #expect((anthropicBody["error"] as? [String: Any])?["type"] as? String == "rate_limit_error")
        #expect(Dialect.status(for: .overallTimeout).status == 504 && Dialect.status(for: .upstreamAuth).status == 502)
        #expect(Dialect.status(for: .overloaded).status == 503)

        let inStream = messages(Dialect.anthropic.inStreamError(limited))
        #expect(inStream.first?.event == "error")
        let openAIInStream = messages(Dialect.openAI.inStreamError(limited))
        #expect(((openAIInStream.first?.data as? [String: Any])?["error"] as? [String: Any])?["message"] as? String
                == "The model service is rate limiting.")
        // Switchboard's own stream never answers instead: its errors are events.
        #expect(SSEEncoder().answer(for: limited) == nil)
    }
}
