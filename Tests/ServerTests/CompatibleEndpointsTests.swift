import AnthropicMock
import AsyncHTTPClient
import ChatCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TestSupport
@testable import Server

/// Rules for the SDK tests: a chat about a desktop report is `complex` and advised; anything else is `simple` and
/// streams on claude-haiku-4-5 (the mock).
private let sdkRules = rulesFile(levels: twoLevels(), routes: twoRoutes(), rules: """
  - { id: desktop, weight: 5, when: { any_keywords: [desktop] } }
""")

/// What the SDK script printed.
private struct SDKRun {
    let output: [String: Any]
    let stderr: String

    subscript(_ key: String) -> Any? { output[key] }
    var pieces: [[String: Any]] { output["pieces"] as? [[String: Any]] ?? [] }
    var text: String { pieces.compactMap { $0["text"] as? String }.joined() }
    var exception: String? { output["exception"] as? String }
    var status: Int? { output["status"] as? Int }
}

/// Runs one scenario of `sdk_client.py` against the server on `port`.
/// `question` replaces the user's message ("list the people").
private func sdk(_ scenario: String, port: Int, key: String = webKey, model: String = "auto", question: String? = nil) async throws
    -> SDKRun
{
    let result = try await runProcessAsync(URL(fileURLWithPath: "/usr/bin/env"),
                                           (question.map { ["SDK_QUESTION=\($0)"] } ?? [])
                                               + ["python3", SDKClients.script, "http://127.0.0.1:\(port)", key, scenario, model])
    let output = (try? JSONSerialization.jsonObject(with: result.stdout)) as? [String: Any]
    #expect(output != nil, "\(scenario): \(result.stdoutText) \(result.stderrText)")
    return SDKRun(output: output ?? [:], stderr: result.stderrText)
}

/// A server with the SDK rules and the test keys, streaming from `mock`.
private func withSDKServer(_ mock: MockAnthropic, tools: [any Tool] = [], _ body: @Sendable (Int) async throws -> Void) async throws {
    try await withKeyedServer(mock, rules: sdkRules, tools: tools, body)
}

@Suite("OpenAI- and Anthropic-compatible endpoints, driven by the official SDKs", .serialized, .timeLimit(.minutes(2)),
       .enabled(if: SDKClients.available, "needs python3 with openai and anthropic (pip install openai anthropic)"))
struct CompatibleEndpointsTests {
    @Test("OpenAI SDK, model auto: routed by the rules, text arrives as the model writes it, usage last, the answering model named")
    func openAIStream() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.paced(SSE.textAnswer(["Alice, ", "Bob ", "and Carol."]), pauseEvery: 1, for: .milliseconds(600))))
            try await withSDKServer(mock) { port in
                let run = try await sdk("openai_stream", port: port)
                #expect(run.text == "Alice, Bob and Carol.", "\(run.output) \(run.stderr)")
                let times = run.pieces.compactMap { $0["ms"] as? Int }
                // Real time: the first words were in the SDK's hands long before the last.
                // (The SDK's first event can be late by its own warm-up, so the bound is well below the 1.2 s the model took.)
                #expect((times.last ?? 0) - (times.first ?? 0) >= 700, "\(times)")
                #expect(run["finish_reason"] as? String == "stop")
                #expect(run["model"] as? String == "claude-haiku-4-5")
                let usage = try #require(run["usage"] as? [String: Any])
                #expect(usage["prompt_tokens"] as? Int == 25 && usage["completion_tokens"] as? Int == 15, "\(usage)")
                #expect(mock.received.first?.body["model"] as? String == "claude-haiku-4-5")
            }
        }
    }

    @Test("the routing decision is in the X-Switchboard headers, action included, on the dialect and on /mcp/chat")
    func routingHeaders() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["Hi."])))
            try await withSDKServer(mock) { port in
                let auth = [("authorization", "Bearer \(webKey)")]
                let streamed = try await streamChat(port: port, body: #"{"model":"auto","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
                                                    path: "/v1/chat/completions", headers: auth)
                #expect(streamed.status == 200)
                #expect(streamed.header("x-switchboard-route") == "fast")
                #expect(streamed.header("x-switchboard-action") == "stream")
                #expect(streamed.header("x-switchboard-complexity") == "simple")
                #expect(streamed.header("x-switchboard-provider") == "anthropic")
                #expect(streamed.header("x-switchboard-model") == "claude-haiku-4-5")
                #expect(streamed.header("x-switchboard-hold-head") == nil)
                let advised = try await streamChat(port: port, body: chatJSON("open the desktop report"), path: "/mcp/chat", headers: auth)
                #expect(advised.header("x-switchboard-action") == "advise")
            }
        }
    }

    @Test("not streamed, both SDKs: one completion with the text, the stop reason and the usage")
    func notStreamed() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["Three ", "people."])), .stream(SSE.textAnswer(["Three ", "people."])))
            try await withSDKServer(mock) { port in
                let openAI = try await sdk("openai_plain", port: port)
                #expect(openAI["text"] as? String == "Three people.", "\(openAI.output) \(openAI.stderr)")
                #expect(openAI["finish_reason"] as? String == "stop")
                #expect(openAI["object"] as? String == "chat.completion")
                #expect((openAI["usage"] as? [String: Any])?["total_tokens"] as? Int == 40)
                #expect((mock.received.first?.body["system"] as? [[String: Any]])?.first?["text"] as? String == "Be brief.")
                let anthropic = try await sdk("anthropic_plain", port: port)
                #expect(anthropic["text"] as? String == "Three people.", "\(anthropic.output) \(anthropic.stderr)")
                #expect(anthropic["stop_reason"] as? String == "end_turn")
                #expect(anthropic["model"] as? String == "claude-haiku-4-5")
                #expect((anthropic["usage"] as? [String: Any])?["output_tokens"] as? Int == 15)
            }
        }
    }

    @Test("Anthropic SDK streams as the model writes; its final message has the stop reason and usage")
    func anthropicStream() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.paced(SSE.textAnswer(["Alice, ", "Bob ", "and Carol."]), pauseEvery: 1, for: .milliseconds(600))))
            try await withSDKServer(mock) { port in
                let run = try await sdk("anthropic_stream", port: port)
                #expect(run.text == "Alice, Bob and Carol.", "\(run.output) \(run.stderr)")
                #expect(run["text"] as? String == "Alice, Bob and Carol.")
                let times = run.pieces.compactMap { $0["ms"] as? Int }
                // (The SDK's first event can be late by its own warm-up, so the bound is well below the 1.2 s the model took.)
                #expect((times.last ?? 0) - (times.first ?? 0) >= 700, "\(times)")
                #expect(run["stop_reason"] as? String == "end_turn")
                let usage = try #require(run["usage"] as? [String: Any])
                #expect(usage["input_tokens"] as? Int == 25 && usage["output_tokens"] as? Int == 15, "\(usage)")
            }
        }
    }

    @Test("model auto on an advise route: the route's message as a normal answer, no model called, in both dialects")
    func advice() async throws {
        try await MockAnthropic.run { mock in
            try await withSDKServer(mock) { port in
                for scenario in ["openai_plain", "anthropic_plain"] {
                    let run = try await sdk(scenario, port: port, question: "please open the desktop report")
                    #expect(run["text"] as? String == "Use the desktop client.", "\(run.output) \(run.stderr)")
                }
                let streamed = try await sdk("openai_stream", port: port, question: "please open the desktop report")
                #expect(streamed.text == "Use the desktop client.")
                #expect(streamed["finish_reason"] as? String == "stop")
                #expect(mock.received.isEmpty)
            }
        }
    }

    @Test("client tools, both SDKs: the model's call comes back to the client, its result goes to the model, the answer follows; Switchboard runs none")
    func clientTools() async throws {
        try await MockAnthropic.run { mock in
            let probe = ProbeTool(name: "route_probe")
            for _ in 0..<2 {
                mock.enqueue(.stream(SSE.toolTurn(text: nil, tools: [(id: "toolu_w1", name: "get_weather", fragments: [#"{"city":"#, #""Paris"}"#])])),
                             .stream(SSE.textAnswer(["It is 18 degrees."])))
            }
            try await withSDKServer(mock, tools: [probe]) { port in
                let openAI = try await sdk("openai_tools", port: port)
                let call = try #require((openAI["calls"] as? [[String: Any]])?.first, "\(openAI.output) \(openAI.stderr)")
                #expect(call["id"] as? String == "toolu_w1" && call["name"] as? String == "get_weather")
                #expect(call["arguments"] as? String == #"{"city":"Paris"}"#)
                #expect(openAI["first_finish_reason"] as? String == "tool_calls")
                #expect(openAI["text"] as? String == "It is 18 degrees.")
                let anthropic = try await sdk("anthropic_tools", port: port)
                let use = try #require((anthropic["calls"] as? [[String: Any]])?.first, "\(anthropic.output) \(anthropic.stderr)")
                #expect(use["name"] as? String == "get_weather" && (use["input"] as? [String: Any])?["city"] as? String == "Paris")
                #expect(anthropic["first_stop_reason"] as? String == "tool_use")
                #expect(anthropic["text"] as? String == "It is 18 degrees.")
                #expect(probe.started.isEmpty)
                // Upstream: the client's tool, not Switchboard's; then the result in the conversation.
                let requests = mock.received
                #expect(requests.count == 4)
                let tools = (requests.first?.body["tools"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
                #expect(tools == ["get_weather"])
                for second in [requests[1], requests[3]] {
                    let messages = try #require(second.body["messages"] as? [[String: Any]])
                    let result = (messages.last?["content"] as? [[String: Any]])?.first
                    #expect(result?["type"] as? String == "tool_result" && result?["tool_use_id"] as? String == "toolu_w1", "\(messages)")
                    #expect(result?["content"] as? String == "18 degrees and sunny")
                }
            }
        }
    }

    @Test("no tools declared: Switchboard's tools run inside the loop and the SDK sees only the answer")
    func serverTools() async throws {
        try await MockAnthropic.run { mock in
            let probe = ProbeTool(name: "route_probe")
            mock.enqueue(.stream(SSE.toolTurn(text: "Looking.", tools: [(id: "toolu_p1", name: "route_probe", fragments: ["{}"])])),
                         .stream(SSE.textAnswer([" Three people."])))
            try await withSDKServer(mock, tools: [probe]) { port in
                let run = try await sdk("openai_stream", port: port)
                #expect(run.text == "Looking. Three people.", "\(run.output) \(run.stderr)")
                #expect(run["finish_reason"] as? String == "stop")
                #expect(probe.started.count == 1)
                let usage = try #require(run["usage"] as? [String: Any])
                #expect(usage["completion_tokens"] as? Int == 30, "both model calls are counted: \(usage)")
            }
        }
    }

    @Test("errors before the first token are the SDKs' typed exceptions: 401, 403, 404, 429 with the model service's rate limit")
    func errorsBeforeFirstToken() async throws {
        try await MockAnthropic.run { mock in
            try await withSDKServer(mock) { port in
                for (scenario, family) in [("openai_error", "openai"), ("anthropic_error", "anthropic")] {
                    let wrongKey = try await sdk(scenario, port: port, key: "sb_not-a-key-0123456789abcdef")
                    #expect(wrongKey.exception == "AuthenticationError" && wrongKey.status == 401, "\(family): \(wrongKey.output)")
                    let unknown = try await sdk(scenario, port: port, model: "gpt-nonexistent")
                    #expect(unknown.exception == "NotFoundError" && unknown.status == 404, "\(family): \(unknown.output)")
                    let forbidden = try await sdk(scenario, port: port, key: fastKey, model: "claude-sonnet-4-5")
                    #expect(forbidden.exception == "PermissionDeniedError" && forbidden.status == 403, "\(family): \(forbidden.output)")
                    // The model service's rate limit, every attempt: a 429 before any byte was sent.
                    for _ in 0..<3 {
                        mock.enqueue(.status(429, headers: ["retry-after": "0"], body: SSE.errorBody("rate_limit_error", "slow down")))
                    }
                    let limited = try await sdk(scenario, port: port)
                    #expect(limited.exception == "RateLimitError" && limited.status == 429, "\(family): \(limited.output)")
                }
                // The error bodies are the dialects' own.
                let openAI = try await sdk("openai_error", port: port, model: "gpt-nonexistent")
                let error = try #require((openAI["body"] as? [String: Any]) ?? nil, "\(openAI.output)")
                #expect(error["code"] as? String == "model_not_found" && error["param"] as? String == "model", "\(error)")
                let anthropic = try await sdk("anthropic_error", port: port, model: "gpt-nonexistent")
                let body = try #require(anthropic["body"] as? [String: Any], "\(anthropic.output)")
                #expect((body["error"] as? [String: Any])?["type"] as? String == "not_found_error", "\(body)")
            }
        }
    }

    @Test("an error after the first token is the dialect's in-stream error: the SDK raises it after the text it had")
    func errorsAfterFirstToken() async throws {
        try await MockAnthropic.run { mock in
            for _ in 0..<2 {
                mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Alice"), .pause(.milliseconds(50)),
                                      SSE.error("overloaded_error", "Overloaded")]))
            }
            try await withSDKServer(mock) { port in
                for scenario in ["openai_stream_error", "anthropic_stream_error"] {
                    let run = try await sdk(scenario, port: port)
                    #expect(run.exception != nil, "\(scenario): \(run.output) \(run.stderr)")
                    #expect(run["pieces"] as? [String] == ["Alice"], "\(scenario): \(run.output)")
                    #expect((run["message"] as? String)?.contains("overloaded") == true, "\(scenario): \(run.output)")
                }
            }
        }
    }

    @Test("a client that hangs up mid-stream closes the upstream within a second")
    func hangUp() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.paced(SSE.textAnswer((1...40).map { "word \($0) " }), pauseEvery: 1, for: .milliseconds(100))))
            try await withSDKServer(mock) { port in
                // The script closes its stream at the first text, then waits one second before it exits.
                let run = try await sdk("openai_hangup", port: port)
                #expect(run["first_text_ms"] != nil, "\(run.output) \(run.stderr)")
                #expect(mock.disconnects.count == 1)
                #expect(mock.finished == 0)
            }
        }
    }

    @Test("a model slow to start: the head waits for its first byte only so long, then keepalive comments hold the connection")
    func headWait() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.delayed(.milliseconds(1_500), .stream(SSE.textAnswer(["Late."]))))
            let rules = try TemporaryRules(sdkRules)
            defer { rules.remove() }
            var config = streamingConfiguration(mock, keepalive: .milliseconds(200))
            config.rulesPath = rules.path
            config.headWait = .milliseconds(300)
            let app = try await buildApplication(configuration: config)
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let clock = ContinuousClock(), sent = clock.now
                let response = try await postChat(port: port, body: #"{"model":"auto","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
                                                  path: "/v1/chat/completions")
                let headAt = clock.now - sent
                #expect(response.status == .ok)
                #expect(headAt >= .milliseconds(250) && headAt < .milliseconds(1_400), "the head went out at \(headAt)")
                var text = ""
                for try await part in response.body { text += String(buffer: part) }
                #expect(text.hasPrefix(": keepalive\n\n"), "\(text)")
                #expect(text.contains(#""content":"Late.""#) && text.hasSuffix("data: [DONE]\n\n"), "\(text)")
            }
        }
    }

    @Test("a failure before the first byte, however late within the wait, is the status with the dialect's body")
    func lateFailureBeforeFirstByte() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.delayed(.milliseconds(600), .status(529, body: SSE.errorBody("overloaded_error", "Overloaded"))))
            for _ in 0..<2 { mock.enqueue(.status(529, body: SSE.errorBody("overloaded_error", "Overloaded"))) }
            try await withSDKServer(mock) { port in
                let response = try await postChat(port: port, body: #"{"model":"auto","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#,
                                                  path: "/v1/messages", headers: [("x-api-key", webKey)])
                #expect(response.status.code == 503)
                #expect(response.headers.first(name: "retry-after") != nil)
                #expect(response.headers.first(name: "content-type") == "application/json")
                let body = try json(try await response.body.collect(upTo: 1 << 16))
                #expect(body["type"] as? String == "error")
                #expect((body["error"] as? [String: Any])?["type"] as? String == "overloaded_error", "\(body)")
            }
        }
    }

    @Test("GET /v1/models lists auto, the routes, and the models the key may use")
    func models() async throws {
        try await MockAnthropic.run { mock in
            try await withSDKServer(mock) { port in
                let all = try await sdk("openai_models", port: port)
                let ids = all["ids"] as? [String] ?? []
                #expect(Array(ids.prefix(3)) == ["auto", "desktop", "fast"], "\(all.output) \(all.stderr)")
                #expect(ids.contains("claude-haiku-4-5") && ids.contains("claude-sonnet-4-5"))
                let fastOnly = try await sdk("openai_models", port: port, key: fastKey)
                #expect(fastOnly["ids"] as? [String] == ["auto", "fast", "claude-haiku-4-5"], "\(fastOnly.output)")
            }
        }
    }

    @Test("LiteLLM's SDK streams an answer through the OpenAI endpoint (model openai/auto)",
          .enabled(if: SDKClients.liteLLM, "needs litellm"))
    func liteLLM() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["Alice ", "and Bob."])))
            try await withSDKServer(mock) { port in
                let run = try await sdk("litellm_stream", port: port)
                #expect(run.text == "Alice and Bob.", "\(run.output) \(run.stderr)")
            }
        }
    }

    @Test("LangChain's ChatOpenAI streams an answer through the OpenAI endpoint",
          .enabled(if: SDKClients.langChain, "needs langchain-openai"))
    func langChain() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["Alice ", "and Bob."])))
            try await withSDKServer(mock) { port in
                let run = try await sdk("langchain_stream", port: port)
                #expect(run.text == "Alice and Bob.", "\(run.output) \(run.stderr)")
            }
        }
    }
}
