import AnthropicMock
import ChatCore
import Foundation
import NIOCore
import Synchronization
import TestSupport
import Testing
@testable import Upstream

private let apiKey = "sk-openai-test-SECRET-987654321"

/// Runs `body` with an OpenAI-compatible client of the mock (which serves `/v1/chat/completions`).
private func withClient(_ mock: MockAnthropic, configure: (inout OpenAIConfiguration) -> Void = { _ in },
                        _ body: (OpenAIClient) async throws -> Void) async throws {
    var configuration = OpenAIConfiguration(baseURL: mock.baseURL + "/v1", apiKey: apiKey)
    configuration.retry.baseDelay = .milliseconds(20)
    configure(&configuration)
    try await using(OpenAIClient(configuration: configuration), body)
}

private let tools = [ToolDefinition(name: "get_employee", description: "One employee",
                                    inputSchema: ["type": "object", "properties": ["id": ["type": "integer"]]])]

/// A conversation after one tool round: the assistant called a tool, the user turn carries its result.
private let afterToolRound = ModelRequest(model: "llama3.1", system: "be brief", maxTokens: 256, messages: [
    ChatMessage(role: .user, content: .text("who is employee 7?")),
    ChatMessage(role: .assistant, content: .blocks([
        ["type": "thinking", "thinking": "look it up", "signature": "sig"],
        ["type": "text", "text": "Let me look."],
        ["type": "tool_use", "id": "call_1", "name": "get_employee", "input": ["id": 7]],
    ])),
    ChatMessage(role: .user, content: .blocks([
        ["type": "tool_result", "tool_use_id": "call_1", "content": "{\"name\":\"Ana\"}"],
    ])),
], tools: tools)


@Suite("OpenAI-compatible client", .serialized, .timeLimit(.minutes(3)))
struct OpenAIClientTests {
    @Test("streams text and returns the turn; sends the documented request: bearer key, stream with usage, system first, tools as functions")
    func textTurn() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([.send(": OPENROUTER PROCESSING\n\n")] + OpenAIChunk.textAnswer(["Hel", "lo"])))
            try await withClient(mock) { model in
                let seen = Seen()
                let request = ModelRequest(model: "llama3.1", system: "be brief", maxTokens: 256,
                                           messages: [ChatMessage(role: .user, content: .text("hi"))], tools: tools)
                let turn = try await model.streamTurn(request) { seen.record($0) }
                #expect(seen.all == [.text("Hel"), .text("lo")])
                #expect(turn.stopReason == .endTurn)
                #expect(turn.usage == Usage(inputTokens: 12, outputTokens: 5))
                let sent = try #require(mock.received.first)
                #expect(sent.headers["authorization"] == "Bearer \(apiKey)")
                #expect(sent.body["model"] as? String == "llama3.1")
                #expect(sent.body["max_tokens"] as? Int == 256)
                #expect(sent.body["stream"] as? Bool == true)
                #expect((sent.body["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
                let messages = try #require(sent.body["messages"] as? [[String: Any]])
                #expect(messages.map { $0["role"] as? String } == ["system", "user"])
                let tool = try #require((sent.body["tools"] as? [[String: Any]])?.first)
                #expect(tool["type"] as? String == "function")
                #expect((tool["function"] as? [String: Any])?["name"] as? String == "get_employee")
                #expect((tool["function"] as? [String: Any])?["parameters"] != nil)
            }
        }
    }

    @Test("a tool round: the call comes back as tool_use; the next request carries tool_calls (arguments as a string) and a tool message")
    func toolRound() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([
                OpenAIChunk.delta(#"{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_employee","arguments":""}}]}"#),
                OpenAIChunk.delta(#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"id\": 7}"}}]}"#),
                OpenAIChunk.delta("{}", finish: "tool_calls"), OpenAIChunk.done,
            ]), .stream(OpenAIChunk.textAnswer(["Ana."])))
            try await withClient(mock) { model in
                let first = try await model.streamTurn(ModelRequest(model: "llama3.1", system: nil, maxTokens: 64,
                                                                    messages: [afterToolRound.messages[0]], tools: tools)) { _ in }
                #expect(first.stopReason == .toolUse)
                #expect(first.toolUses == [ToolUse(id: "call_1", name: "get_employee", input: ["id": 7])])
                _ = try await model.streamTurn(afterToolRound) { _ in }
                let messages = try #require(mock.received.last?.body["messages"] as? [[String: Any]])
                #expect(messages.map { $0["role"] as? String } == ["system", "user", "assistant", "tool"])
                #expect(messages[2]["content"] as? String == "Let me look.", "thinking is not sent back")
                let call = try #require((messages[2]["tool_calls"] as? [[String: Any]])?.first)
                #expect(call["id"] as? String == "call_1")
                let function = try #require(call["function"] as? [String: Any])
                #expect(function["name"] as? String == "get_employee")
                #expect(function["arguments"] as? String == #"{"id":7}"#)
                #expect(messages[3]["tool_call_id"] as? String == "call_1")
                #expect(messages[3]["content"] as? String == #"{"name":"Ana"}"#)
            }
        }
    }

    @Test("retries a 429 (honouring retry-after-ms) and a 503; a 400 is not retried and names the server's message")
    func retries() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.status(429, headers: ["retry-after-ms": "30"], body: #"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#),
                         .status(503, body: #"{"error":{"message":"busy","type":"ServiceUnavailableError","code":503}}"#),
                         .stream(OpenAIChunk.textAnswer(["ok"])),
                         .status(400, body: #"{"object":"error","message":"This model's maximum context length is 4096 tokens","type":"BadRequestError","code":400}"#))
            try await withClient(mock) { model in
                let turn = try await model.streamTurn(afterToolRound) { _ in }
                #expect(turn.content == [["type": "text", "text": "ok"]])
                #expect(mock.received.count == 3)
                let error = await #expect(throws: StreamError.self) { try await model.streamTurn(afterToolRound) { _ in } }
                #expect(error?.code == .upstreamRejected)
                #expect(error?.message.contains("the conversation is longer than the model accepts") == true, "our words for its reason")
                #expect(error?.message.contains("4096") == false, "never the server's own text")
                #expect(error?.message.contains("HTTP 400") == true)
                #expect(mock.received.count == 4, "a 400 is not tried again")
            }
        }
    }

    @Test("a 429 body's \"try again in 300ms\" is waited for; a used-up quota is not retried; x-should-retry overrides the status")
    func retryHints() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.status(429, body: #"{"error":{"message":"Rate limit reached for gpt-4.1 on tokens per min. Please try again in 300ms.","type":"tokens","code":"rate_limit_exceeded"}}"#),
                         .stream(OpenAIChunk.textAnswer(["after the wait"])),
                         .status(429, body: #"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#),
                         .status(503, headers: ["x-should-retry": "false"], body: #"{"error":{"message":"down for maintenance","type":"server_error","code":null}}"#),
                         .status(400, headers: ["x-should-retry": "true"], body: #"{"error":{"message":"transient","type":"invalid_request_error","code":null}}"#),
                         .stream(OpenAIChunk.textAnswer(["told to retry"])))
            try await withClient(mock) { model in
                let started = ContinuousClock.now
                let turn = try await model.streamTurn(afterToolRound) { _ in }
                #expect(turn.content == [["type": "text", "text": "after the wait"]])
                #expect(ContinuousClock.now - started >= .milliseconds(300), "the body's hint, not the 20 ms base delay")
                #expect(mock.received.count == 2)

                let quota = await #expect(throws: StreamError.self) { try await model.streamTurn(afterToolRound) { _ in } }
                #expect(quota?.code == .rateLimited)
                #expect(quota?.retryable == false)
                #expect(mock.received.count == 3, "a used-up quota does not clear by waiting")

                let maintenance = await #expect(throws: StreamError.self) { try await model.streamTurn(afterToolRound) { _ in } }
                #expect(maintenance?.code == .upstreamError)
                #expect(mock.received.count == 4, "x-should-retry: false")

                let retried = try await model.streamTurn(afterToolRound) { _ in }
                #expect(retried.content == [["type": "text", "text": "told to retry"]])
                #expect(mock.received.count == 6, "x-should-retry: true")
            }
        }
        #expect(StreamingHTTP.retryHint(in: ByteBuffer(string: "Please try again in 1.5s."), atMost: .seconds(61)) == .milliseconds(1500))
        #expect(StreamingHTTP.retryHint(in: ByteBuffer(string: "try again in 20s"), atMost: .seconds(61)) == .seconds(20))
        #expect(StreamingHTTP.retryHint(in: ByteBuffer(string: "try again in a moment"), atMost: .seconds(61)) == nil)
        #expect(StreamingHTTP.retryHint(in: ByteBuffer(string: "try again in 5 minutes"), atMost: .seconds(61)) == nil)
    }

    @Test("an error chunk after the 200 is delivered after the text before it; a stream cut without finish is an error")
    func midStream() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([OpenAIChunk.delta(#"{"content":"Part"}"#),
                                  OpenAIChunk.data(#"{"error":{"message":"The server had an error","type":"server_error","code":null}}"#),
                                  OpenAIChunk.done]),
                         .stream([OpenAIChunk.delta(#"{"content":"cut"}"#)]))
            try await withClient(mock) { model in
                let seen = Seen()
                let error = await #expect(throws: StreamError.self) { try await model.streamTurn(afterToolRound) { seen.record($0) } }
                #expect(error?.code == .upstreamError)
                #expect(seen.all == [.text("Part")])
                let cut = await #expect(throws: StreamError.self) { try await model.streamTurn(afterToolRound) { _ in } }
                #expect(cut?.code == .upstreamStreamEnded)
            }
        }
    }

    @Test("max_completion_tokens when configured; no authorization header without a key (local servers)")
    func options() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(OpenAIChunk.textAnswer(["a"])))
            try await withClient(mock, configure: { $0.maxTokensField = "max_completion_tokens"; $0.apiKey = nil }) { model in
                _ = try await model.streamTurn(afterToolRound) { _ in }
                let sent = try #require(mock.received.first)
                #expect(sent.body["max_completion_tokens"] as? Int == 256)
                #expect(sent.body["max_tokens"] == nil)
                #expect(sent.headers["authorization"] == nil)
            }
        }
    }

    @Test("the shared timeouts apply: a server silent mid-stream is an idle timeout")
    func idleTimeout() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([OpenAIChunk.delta(#"{"content":"a"}"#), .pause(.seconds(2)), OpenAIChunk.done]))
            try await withClient(mock, configure: { $0.timeouts.idle = .milliseconds(300) }) { model in
                let error = await #expect(throws: StreamError.self) { try await model.streamTurn(afterToolRound) { _ in } }
                #expect(error?.code == .idleTimeout)
            }
        }
    }
}
