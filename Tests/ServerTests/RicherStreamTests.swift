import AnthropicMock
import ChatCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TestSupport
@testable import Server

/// Issue #24's opt-in fields of a chat (tool details, the turns to keep) and the prompt-cache breakpoints, against
/// the mock upstream and the built-in HR tools.
@Suite("A richer stream and a cheaper loop", .serialized, .timeLimit(.minutes(1)))
struct RicherStreamTests {
    private func withServer(_ mock: MockAnthropic, configure: (inout ServerConfiguration) -> Void = { _ in },
                            _ body: @Sendable (Int) async throws -> Void) async throws {
        var config = streamingConfiguration(mock)
        configure(&config)
        let app = try await buildApplication(configuration: config)
        try await app.test(.live) { client in
            try await body(try #require(client.port))
        }
    }

    private func enqueueToolChat(_ mock: MockAnthropic) {
        mock.enqueue(.stream(SSE.toolTurn(text: "Looking.", tools: [(id: "toolu_d", name: "get_departments", fragments: ["{}"])])),
                     .stream(SSE.textAnswer(["There are ", "four."])))
    }

    @Test("toolDetails: executing carries the input the model sent, completed the result the model got; without it neither")
    func toolDetails() async throws {
        try await MockAnthropic.run { mock in
            try await withServer(mock) { port in
                enqueueToolChat(mock)
                let plain = try await streamChat(port: port, body: chatJSON("list the departments"))
                for event in plain.events("tool_progress") {
                    #expect(event["input"] == nil && event["result"] == nil && event["resultTruncated"] == nil)
                }
                enqueueToolChat(mock)
                let detailed = try await streamChat(port: port, body: chatJSON("list the departments", extra: #","toolDetails":true"#))
                let progress = detailed.events("tool_progress")
                #expect(progress.map { $0["status"] as? String } == ["executing", "completed"])
                #expect((progress.first?["input"] as? [String: Any])?.isEmpty == true, "the model sent {}")
                #expect(progress.first?["result"] == nil)
                let result = try #require(progress.last?["result"] as? String)
                // The same text the model received as the tool's result.
                let sent = mock.received.last?.body["messages"] as? [[String: Any]]
                let toolResult = (sent?.last?["content"] as? [[String: Any]])?.first
                #expect(toolResult?["content"] as? String == result)
                #expect(result.contains("Engineering"))
                #expect(progress.last?["resultTruncated"] == nil)
                #expect(progress.last?["input"] == nil)
            }
        }
    }

    @Test("toolDetails: a result over the limit is cut on a character boundary and says so")
    func toolDetailsCut() {
        let long = String(repeating: "é", count: ToolProgress.resultLimit)
        var progress = ToolProgress(tool: "t", toolUseId: "u", status: .completed, current: 1, total: 1, executionTimeMs: 3)
        progress.result = long.prefixUTF8(ToolProgress.resultLimit)
        progress.resultTruncated = true
        var encoder = SSEEncoder(accumulated: false)
        let text = String(decoding: encoder.encode(.toolProgress(progress)), as: UTF8.self)
        let json = try? JSONSerialization.jsonObject(with: Data(text.split(separator: "\n")[1].dropFirst(6).utf8)) as? [String: Any]
        #expect((json?["result"] as? String)?.utf8.count == ToolProgress.resultLimit)
        #expect(json?["resultTruncated"] as? Bool == true)
    }

    @Test("returnMessages: complete carries the turns the chat added, tool ids paired; sent back with a new question they reach the model in order")
    func returnedMessagesRoundTrip() async throws {
        try await MockAnthropic.run { mock in
            try await withServer(mock) { port in
                enqueueToolChat(mock)
                let first = try await streamChat(port: port, body: chatJSON("list the departments", extra: #","returnMessages":true"#))
                let added = try #require(first.events("complete").first?["messages"] as? [[String: Any]])
                #expect(added.map { $0["role"] as? String } == ["assistant", "user", "assistant"])
                let call = try #require((added[0]["content"] as? [[String: Any]])?.first { $0["type"] as? String == "tool_use" })
                let result = try #require((added[1]["content"] as? [[String: Any]])?.first)
                #expect(result["type"] as? String == "tool_result")
                #expect(result["tool_use_id"] as? String == call["id"] as? String)
                #expect(call["id"] as? String == "toolu_d")
                #expect(((added[2]["content"] as? [[String: Any]])?.first?["text"] as? String) == "There are four.")
                // Without the flag, no messages.
                enqueueToolChat(mock)
                let plain = try await streamChat(port: port, body: chatJSON("list the departments"))
                #expect(plain.events("complete").first?["messages"] == nil)

                // The history sent back, with a follow-up: accepted as is, and the model sees it in order.
                mock.enqueue(.stream(SSE.textAnswer(["Engineering has the most."])))
                let history: [Any] = [["role": "user", "content": "list the departments"]] + added
                    + [["role": "user", "content": "which is largest?"]]
                let body = String(decoding: try JSONSerialization.data(withJSONObject: ["messages": history]), as: UTF8.self)
                let next = try await streamChat(port: port, body: body)
                #expect(next.types.last == "complete", "\(next.types) \(next.body ?? [:])")
                let seen = try #require(mock.received.last?.body["messages"] as? [[String: Any]])
                #expect(seen.map { $0["role"] as? String } == ["user", "assistant", "user", "assistant", "user"])
                let seenCall = (seen[1]["content"] as? [[String: Any]])?.first { $0["type"] as? String == "tool_use" }
                #expect(seenCall?["id"] as? String == "toolu_d")
                #expect(((seen[2]["content"] as? [[String: Any]])?.first?["tool_use_id"] as? String) == "toolu_d")
            }
        }
    }

    @Test("prompt caching: the tools and system marked in every request, the conversation from the second call on, never more than 4 breakpoints; prompt_cache: false sends none")
    func cacheBreakpoints() async throws {
        /// Where a request's `cache_control` marks are: `tools`, `system`, `messages[i]`.
        @Sendable func breakpoints(_ body: [String: Any]) -> [String] {
            var marks: [String] = []
            let tools = body["tools"] as? [[String: Any]] ?? []
            for (index, tool) in tools.enumerated() where tool["cache_control"] != nil { marks.append(index == tools.count - 1 ? "tools" : "tools[\(index)]") }
            for block in body["system"] as? [[String: Any]] ?? [] where block["cache_control"] != nil { marks.append("system") }
            for (index, message) in (body["messages"] as? [[String: Any]] ?? []).enumerated() {
                for block in message["content"] as? [[String: Any]] ?? [] where block["cache_control"] != nil { marks.append("messages[\(index)]") }
            }
            return marks
        }
        try await MockAnthropic.run { mock in
            try await withServer(mock) { port in
                enqueueToolChat(mock)
                let stream = try await streamChat(port: port, body: #"{"system":"Answer briefly.","messages":[{"role":"user","content":"list the departments"}]}"#)
                #expect(stream.types.last == "complete")
                let requests = mock.received.suffix(2).map(\.body)
                #expect(breakpoints(requests[0]) == ["tools", "system"])
                // The second call: the conversation so far (the tool results, its last message) is marked too.
                #expect(breakpoints(requests[1]) == ["tools", "system", "messages[2]"])
                for request in requests { #expect(breakpoints(request).count <= 4) }
            }
            try await withServer(mock, configure: { $0.anthropic?.promptCache = false }) { port in
                enqueueToolChat(mock)
                _ = try await streamChat(port: port, body: #"{"system":"Answer briefly.","messages":[{"role":"user","content":"list the departments"}]}"#)
                for request in mock.received.suffix(2).map(\.body) {
                    #expect(breakpoints(request).isEmpty)
                    #expect(request["system"] as? String == "Answer briefly.")
                }
            }
        }
    }

    @Test("thinking: the budget sent as Anthropic's thinking config, thinking_chunk events before the text, the thinking block and its signature kept for the next call")
    func thinking() async throws {
        try await MockAnthropic.run { mock in
            try await withServer(mock) { port in
                mock.enqueue(.stream([SSE.messageStart()] + SSE.thinking(0, thinking: "The user wants departments.", signature: "sig-1")
                                     + [SSE.toolStart(1, id: "toolu_t", name: "get_departments"), SSE.inputJSON(1, "{}"), SSE.stop(1),
                                        SSE.messageDelta("tool_use"), SSE.messageStop]),
                             .stream([SSE.messageStart()] + SSE.thinking(0, thinking: "Four of them.", signature: "sig-2")
                                     + [SSE.textStart(1), SSE.text(1, "There are four."), SSE.stop(1), SSE.messageDelta("end_turn"), SSE.messageStop]))
                let stream = try await streamChat(port: port, body: chatJSON("list the departments",
                                                                             extra: #","thinking":{"budgetTokens":2048},"returnMessages":true"#))
                #expect(stream.types.last == "complete", "\(stream.types)")
                #expect(stream.events("thinking_chunk").map { $0["chunk"] as? String } == ["The user wants departments.", "Four of them."])
                // Thinking arrives before the text of its turn.
                let kinds = stream.types.filter { ["thinking_chunk", "text_chunk", "tool_detected"].contains($0) }
                #expect(kinds == ["thinking_chunk", "tool_detected", "thinking_chunk", "text_chunk"])
                let first = try #require(mock.received.suffix(2).first?.body)
                #expect((first["thinking"] as? [String: Any])?["type"] as? String == "enabled")
                #expect((first["thinking"] as? [String: Any])?["budget_tokens"] as? Int == 2048)
                // The assistant turn goes back with its thinking block and signature, as the API requires.
                let second = try #require(mock.received.last?.body["messages"] as? [[String: Any]])
                let thought = (second[1]["content"] as? [[String: Any]])?.first
                #expect(thought?["type"] as? String == "thinking")
                #expect(thought?["signature"] as? String == "sig-1")
                // The turns returned for the history leave thinking out (the request format does not take it).
                let added = try #require(stream.events("complete").first?["messages"] as? [[String: Any]])
                let types = added.flatMap { ($0["content"] as? [[String: Any]] ?? []).compactMap { $0["type"] as? String } }
                #expect(types == ["tool_use", "tool_result", "text"])

                // Without it, no thinking config.
                mock.enqueue(.stream(SSE.textAnswer(["Hi."])))
                _ = try await streamChat(port: port, body: chatJSON("hello"))
                #expect(mock.received.last?.body["thinking"] == nil)
            }
        }
    }

    @Test("thinking: a budget under 1024 or not below the call's max_tokens is a 400 naming thinking.budgetTokens")
    func thinkingRefused() async throws {
        try await MockAnthropic.run { mock in
            try await withServer(mock) { port in
                for extra in [#","thinking":{"budgetTokens":512}"#, #","thinking":{"budgetTokens":4096}"#,
                              #","maxTokens":2000,"thinking":{"budgetTokens":2000}"#] {
                    let refused = try await streamChat(port: port, body: chatJSON("hello", extra: extra))
                    #expect(refused.status == 400, "\(extra)")
                    #expect((refused.body?["error"] as? [String: Any])?["field"] as? String == "thinking.budgetTokens", "\(extra)")
                }
                #expect(mock.received.isEmpty, "nothing went upstream")
            }
        }
    }

    @Test("the flags are true or false, else a 400 naming the field")
    func badFlags() throws {
        for field in ["toolDetails", "returnMessages"] {
            #expect(throws: ChatRequestError(field: field, message: "expected true or false, found \"yes\"")) {
                try ChatRequest(json: Array(#"{"messages":[{"role":"user","content":"hi"}],"\#(field)":"yes"}"#.utf8))
            }
        }
        let chat = try ChatRequest(json: Array(#"{"messages":[{"role":"user","content":"hi"}],"toolDetails":true,"returnMessages":true}"#.utf8))
        #expect(chat.toolDetails && chat.returnMessages)
    }
}
