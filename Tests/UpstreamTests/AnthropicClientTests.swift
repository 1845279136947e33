import AnthropicMock
import ChatCore
import Foundation
import Synchronization
import TestSupport
import Testing
@testable import Upstream

private let apiKey = "sk-ant-test-SECRET-0123456789"

/// Runs `body` with a client of the mock, and shuts the client down after it, whatever happened.
private func withClient(_ mock: MockAnthropic, configure: (inout AnthropicConfiguration) -> Void = { _ in },
                        _ body: (AnthropicClient) async throws -> Void) async throws {
    var configuration = AnthropicConfiguration(apiKey: apiKey, baseURL: mock.baseURL)
    configuration.retry.baseDelay = .milliseconds(20)
    configure(&configuration)
    try await using(AnthropicClient(configuration: configuration), body)
}

private let request = ModelRequest(
    model: "claude-haiku-4-5", system: "be brief", maxTokens: 256,
    messages: [ChatMessage(role: .user, content: .text("list employees"))],
    tools: [ToolDefinition(name: "get_employees", description: "Employees", inputSchema: .object(["type": .string("object")]))])


@Suite("Anthropic client", .serialized, .timeLimit(.minutes(3)))
struct AnthropicClientTests {
    @Test("streams text and returns the turn; sends the documented request")
    func textTurn() async throws {
        try await MockAnthropic.run { mock in
            var pieces = SSE.textAnswer(["Hel", "lo ", "São Paulo"])
            // Pings and event types added after this client was written are ignored.
            pieces.insert(contentsOf: [SSE.ping, SSE.event("content_block_hologram", #"{"type":"content_block_hologram","shape":[1,2]}"#),
                                       .send(": a comment\r\n\r\n")], at: 3)
            mock.enqueue(.stream(pieces))
            try await withClient(mock) { model in
                let seen = Seen()
                let turn = try await model.streamTurn(request) { seen.record($0) }
                #expect(seen.all == [.text("Hel"), .text("lo "), .text("São Paulo")])
                #expect(turn.stopReason == "end_turn")
                #expect(turn.usage == Usage(inputTokens: 25, outputTokens: 15))
                #expect(turn.content == [.object(["type": .string("text"), "text": .string("Hello São Paulo")])])

                let sent = try #require(mock.received.first)
                #expect(sent.headers["x-api-key"] == apiKey)
                #expect(sent.headers["anthropic-version"] == "2023-06-01")
                #expect(sent.body["stream"] as? Bool == true)
                #expect(sent.body["model"] as? String == "claude-haiku-4-5")
                #expect(sent.body["max_tokens"] as? Int == 256)
                // The system prompt and the last tool carry prompt-cache breakpoints (on by default).
                let system = try #require(sent.body["system"] as? [[String: Any]])
                #expect(system.count == 1 && system.first?["text"] as? String == "be brief")
                #expect(system.first?["cache_control"] as? [String: String] == ["type": "ephemeral"])
                let tools = try #require(sent.body["tools"] as? [[String: Any]])
                #expect(tools.first?["name"] as? String == "get_employees")
                #expect(tools.first?["input_schema"] as? [String: String] == ["type": "object"])
            }
        }
    }

    @Test("joins tool input fragments, parses them at the block's stop, keeps thinking blocks whole")
    func toolTurn() async throws {
        try await MockAnthropic.run { mock in
            var pieces = [SSE.messageStart()] + SSE.thinking(0, thinking: "Let me look", signature: "sig==")
            pieces += [SSE.toolStart(1, id: "toolu_1", name: "get_employees"), SSE.inputJSON(1, ""),
                       SSE.inputJSON(1, #"{"min_incr"#), SSE.inputJSON(1, #"ement": 5, "city": "S\u00e3o"#),
                       SSE.inputJSON(1, #" Paulo"}"#), SSE.stop(1), SSE.messageDelta("tool_use"), SSE.messageStop]
            mock.enqueue(.stream(pieces))
            try await withClient(mock) { model in
                let seen = Seen()
                let turn = try await model.streamTurn(request) { seen.record($0) }
                #expect(seen.all == [.thinking("Let me look"), .toolUseStarted(id: "toolu_1", name: "get_employees")])
                #expect(turn.stopReason == "tool_use")
                let input: JSONValue = .object(["min_increment": .number(5), "city": .string("São Paulo")])
                #expect(turn.toolUses == [ToolUse(id: "toolu_1", name: "get_employees", input: input)])
                #expect(turn.content == [
                    .object(["type": .string("thinking"), "thinking": .string("Let me look"), "signature": .string("sig==")]),
                    .object(["type": .string("tool_use"), "id": .string("toolu_1"), "name": .string("get_employees"), "input": input]),
                ])
            }
        }
    }

    @Test("a max_tokens stop never yields the tool whose input was cut off")
    func truncatedToolInput() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Looking"), SSE.stop(0),
                                  SSE.toolStart(1, id: "toolu_1", name: "get_employees"), SSE.inputJSON(1, #"{"depart"#),
                                  SSE.messageDelta("max_tokens"), SSE.messageStop]))
            try await withClient(mock) { model in
                let turn = try await model.streamTurn(request) { _ in }
                #expect(turn.stopReason == "max_tokens")
                #expect(turn.toolUses.isEmpty)
                #expect(turn.content == [.object(["type": .string("text"), "text": .string("Looking")])])
            }
        }
    }

    @Test("a refused connection fails each attempt at once: every attempt is made and the error comes in well under the first-byte timeout")
    func refusedConnection() async throws {
        var configuration = AnthropicConfiguration(apiKey: apiKey, baseURL: "http://127.0.0.1:\(freeLoopbackPort())")
        configuration.retry.baseDelay = .milliseconds(50)
        configuration.timeouts.firstByte = .seconds(20)
        let model = AnthropicClient(configuration: configuration)
        let started = ContinuousClock.now
        let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
        let elapsed = ContinuousClock.now - started
        try? await model.shutdown()
        #expect(error?.code == .upstreamUnreachable)
        #expect(elapsed < .seconds(5), "no waiting behind the pool's own reconnection backoff: \(elapsed)")
        #expect(elapsed >= .milliseconds(50), "the retries' backoff was taken: \(elapsed)")
    }

    @Test("retries 529 and 429 before the stream, honouring retry-after-ms")
    func retries() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.status(529, body: SSE.errorBody("overloaded_error", "Overloaded")),
                         .status(429, headers: ["retry-after-ms": "300"], body: SSE.errorBody("rate_limit_error", "slow down")),
                         .stream(SSE.textAnswer(["ok"])))
            try await withClient(mock) { model in
                let clock = ContinuousClock()
                let start = clock.now
                let turn = try await model.streamTurn(request) { _ in }
                #expect(turn.content.count == 1)
                #expect(mock.received.count == 3)
                #expect(clock.now - start >= .milliseconds(300))
            }
        }
    }

    @Test("gives up after the last attempt with the upstream's error, and never says the key")
    func givesUp() async throws {
        try await MockAnthropic.run { mock in
            for _ in 0..<3 { mock.enqueue(.status(529, body: SSE.errorBody("overloaded_error", "Overloaded"))) }
            try await withClient(mock) { model in
                let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
                #expect(error?.code == .overloaded)
                #expect(error?.retryable == true)
                #expect(error?.message.contains("HTTP 529") == true)
                #expect(error?.message.contains(apiKey) == false)
                #expect(mock.received.count == 3)
            }
        }
    }

    @Test("does not retry what cannot succeed", arguments: [
        (400, "invalid_request_error", "upstream_rejected"), (401, "authentication_error", "upstream_auth"),
        (404, "not_found_error", "upstream_rejected"),
    ])
    func noRetry(status: Int, type: String, code: String) async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.status(status, body: SSE.errorBody(type, "no")))
            try await withClient(mock) { model in
                let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
                #expect(error?.code.rawValue == code)
                #expect(error?.retryable == false)
                #expect(mock.received.count == 1)
            }
        }
    }

    @Test("a retry-after beyond the limit is not waited for")
    func longRetryAfter() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.status(429, headers: ["retry-after": "3600"], body: SSE.errorBody("rate_limit_error", "spend cap")))
            try await withClient(mock) { model in
                let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
                #expect(error?.code == .rateLimited)
                #expect(mock.received.count == 1)
            }
        }
    }

    @Test("a mid-stream error event ends the turn with our error, after the text before it")
    func midStreamError() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Partial"),
                                  SSE.error("overloaded_error", "Overloaded")]))
            try await withClient(mock) { model in
                let seen = Seen()
                let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { seen.record($0) } }
                #expect(seen.all == [.text("Partial")])
                #expect(error?.code == .overloaded)
                #expect(mock.received.count == 1)
            }
        }
    }

    @Test("a stream cut before message_stop is an error")
    func cutStream() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Half")]))
            try await withClient(mock) { model in
                let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
                #expect(error?.code == .upstreamStreamEnded)
            }
        }
    }

    @Test("timeouts each have their code", arguments: ["idle", "first_byte", "overall"])
    func timeouts(kind: String) async throws {
        try await MockAnthropic.run { mock in
            switch kind {
            case "idle":
                mock.enqueue(.stream([SSE.messageStart(), .pause(.seconds(2)), SSE.messageStop]))
            case "first_byte":
                for _ in 0..<3 { mock.enqueue(.delayed(.seconds(2), .stream(SSE.textAnswer(["late"])))) }
            default:
                mock.enqueue(.stream([SSE.messageStart()] + Array(repeating: [SSE.ping, .pause(.milliseconds(50))], count: 40).flatMap { $0 }
                                     + [SSE.messageStop]))
            }
            try await withClient(mock, configure: { configuration in
                configuration.timeouts.idle = .milliseconds(300)
                configuration.timeouts.firstByte = .milliseconds(300)
                configuration.timeouts.overall = kind == "overall" ? .milliseconds(500) : .seconds(30)
                configuration.retry.maxAttempts = 1
            }) { model in
                let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
                #expect(error?.code.rawValue == "\(kind)_timeout")
            }
        }
    }

    @Test("cancelling the caller closes the upstream request at once", .cpuQuiet)
    func cancellation() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Hi"), .pause(.seconds(10)), SSE.messageStop]))
            try await withClient(mock) { model in
                let seen = Seen()
                let task = Task { try await model.streamTurn(request) { seen.record($0) } }
                #expect(await eventually { !seen.all.isEmpty })
                let cancelledAt = ContinuousClock.now
                task.cancel()
                _ = await task.result
                #expect(await eventually(within: .seconds(2)) { !mock.disconnects.isEmpty })
                let disconnect = try #require(mock.disconnects.first)
                #expect(disconnect - cancelledAt < .milliseconds(100))
            }
        }
    }

    @Test("a redirect is not followed: the key never reaches another host")
    func noRedirects() async throws {
        try await MockAnthropic.run { elsewhere in
            elsewhere.enqueue(.stream(SSE.textAnswer(["stolen"])))
            try await MockAnthropic.run { mock in
                mock.enqueue(.status(307, headers: ["location": "\(elsewhere.baseURL)/v1/messages"], body: ""))
                try await withClient(mock) { model in
                    let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
                    #expect(error?.retryable == false)
                    #expect(mock.received.count == 1)
                    #expect(elsewhere.received.isEmpty)
                }
            }
        }
    }

    @Test("reading stops at message_stop: an upstream that keeps the body open after it does not hold the turn")
    func stopsAtMessageStop() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["done"]) + [.pause(.seconds(20)), SSE.ping]))
            try await withClient(mock) { model in
                let turn = try await model.streamTurn(request) { _ in }
                #expect(turn.stopReason == .endTurn)
                // Returned while the upstream was still in its 20 s pause.
                #expect(mock.finished == 0)
            }
        }
    }
}
