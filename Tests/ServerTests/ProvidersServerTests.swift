import AnthropicMock
import AsyncHTTPClient
import ChatCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Routing
import Storage
import Testing
import TestSupport
import Tools
import Upstream
@testable import Server

/// Rules whose simple route streams on a local OpenAI-compatible server (the mock at `baseURL`), the moderate one on
/// the built-in Anthropic provider.
private func providerRules(baseURL: String) -> String {
    rulesFile(providers: "  local: { kind: openai, base_url: \"\(baseURL)/v1\" }", levels: """
      - { name: simple, max_score: 1, route: fast, estimated_seconds: 3 }
      - { name: moderate, route: standard, estimated_seconds: 10 }
    """, routes: """
      fast: { action: stream, provider: local, model: "llama3.1:8b", max_iterations: 3 }
      standard: { action: stream }
    """, rules: "  - { id: compare, weight: 2, when: { any_keywords: [compare] } }")
}

@Suite("Routes on other providers", .serialized, .timeLimit(.minutes(1)))
struct ProvidersServerTests {
    @Test("a route on an OpenAI-compatible provider streams from it, tool round included, with no Anthropic key at all")
    func openAIRoute() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(
                .stream([OpenAIChunk.delta(#"{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"route_probe","arguments":"{}"}}]}"#),
                         OpenAIChunk.delta("{}", finish: "tool_calls"), OpenAIChunk.usage(prompt: 40, completion: 9), OpenAIChunk.done]),
                .stream(OpenAIChunk.textAnswer(["Three ", "people."])))
            let rules = try TemporaryRules(providerRules(baseURL: mock.baseURL))
            defer { rules.remove() }
            var config = configuration(rules: rules.path)  // no ANTHROPIC_API_KEY: only the local provider can answer
            config.loop.model = "claude-sonnet-4-5"
            let probe = ProbeTool(name: "route_probe")
            let app = try await buildApplication(configuration: config, tools: [probe])
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let stream = try await streamChat(port: port, body: chatJSON("list the people"), path: "/mcp/chat")
                #expect(stream.status == 200)
                #expect(stream.header("x-switchboard-provider") == "local")
                #expect(stream.header("x-switchboard-model") == "llama3.1:8b")
                #expect(stream.types == ["session_start", "routing", "iteration_start", "tool_detected", "tools_executing", "tool_progress",
                                         "tool_progress", "iteration_start", "text_chunk", "text_chunk", "complete"], "\(stream.types)")
                #expect(probe.started.count == 1)
                let routing = try #require(stream.events("routing").first)
                #expect(routing["provider"] as? String == "local")
                #expect(routing["model"] as? String == "llama3.1:8b")
                #expect(routing["route"] as? String == "fast")
                let complete = try #require(stream.events("complete").first)
                #expect(complete["stopReason"] as? String == "end_turn")
                // Both model calls went to the OpenAI-compatible endpoint with the route's model; the second carried
                // the tool round in OpenAI's shape.
                #expect(mock.received.count == 2)
                #expect(mock.received.allSatisfy { $0.body["model"] as? String == "llama3.1:8b" })
                let messages = try #require(mock.received.last?.body["messages"] as? [[String: Any]])
                #expect(messages.map { $0["role"] as? String } == ["user", "assistant", "tool"])

                // The preflight names the provider; the other route still needs Anthropic's key, and says so.
                let analysis = try await analyze(port: port, chatJSON("list the people"))
                #expect(analysis["provider"] as? String == "local")
                let standard = try await streamChat(port: port, body: chatJSON("compare the teams"), path: "/mcp/chat")
                #expect(standard.status == 503)
            }
        }
    }

    @Test("fallbacks: a provider failing before its first byte hands the chat to the next at once, told by a second routing event; after three failures in a row it is skipped (cooling down, /health says so)")
    func fallbacks() async throws {
        try await MockAnthropic.run { mock in
            try await withFallbackServer(mock) { port in
                // Three chats: the local server answers 503 (tried once, no backoff), Claude answers instead.
                for round in 1...3 {
                    mock.enqueue(.status(503, body: #"{"error":{"message":"busy","type":"server_error","code":null}}"#),
                                 .stream(SSE.textAnswer(["Claude \(round)"])))
                    let stream = try await streamChat(port: port, body: chatJSON("list the people"), path: "/mcp/chat")
                    #expect(stream.types == ["session_start", "routing", "iteration_start", "routing", "text_chunk", "complete"], "\(stream.types)")
                    let moved = try #require(stream.events("routing").last)
                    #expect(moved["provider"] as? String == "anthropic")
                    #expect(moved["model"] as? String == "claude-haiku-4-5")
                    #expect(moved["fallbackFrom"] as? String == "local/llama3.1:8b")
                    #expect(moved["reason"] as? String == "upstream_error")
                    #expect(mock.received.count == 2 * round, "one attempt on the failing provider, one on the fallback")
                }
                #expect(mock.received.first?.body["stream_options"] != nil, "the first call went to the OpenAI-compatible server")
                #expect(mock.received.last?.body["model"] as? String == "claude-haiku-4-5")
                let health = try await get(port: port, "/health")
                #expect(health["status"] as? String == "degraded")
                #expect(health["providersCoolingDown"] as? [String] == ["local"])
                // Cooling down: the next chat goes straight to the fallback, the local server is not called.
                mock.enqueue(.stream(SSE.textAnswer(["straight to Claude"])))
                let skipped = try await streamChat(port: port, body: chatJSON("list the people"), path: "/mcp/chat")
                #expect(skipped.types.last == "complete")
                #expect(mock.received.count == 7)
                #expect(mock.received.last?.body["model"] as? String == "claude-haiku-4-5")
            }
        }
    }

    @Test("once text arrived, a failure is an error event, never a silent switch to the fallback")
    func noSwitchMidAnswer() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([OpenAIChunk.delta(#"{"content":"Half an ans"}"#),
                                  OpenAIChunk.data(#"{"error":{"message":"The server had an error","type":"server_error","code":null}}"#)]))
            try await withFallbackServer(mock) { port in
                let stream = try await streamChat(port: port, body: chatJSON("list the people"), path: "/mcp/chat")
                #expect(stream.types == ["session_start", "routing", "iteration_start", "text_chunk", "error"], "\(stream.types)")
                #expect(stream.events("error").first?["code"] as? String == "upstream_error")
                #expect(mock.received.count == 1)
            }
        }
    }

    @Test("usage has the same shape on both providers (cache tokens apart); prices give costUSD and /metrics counts tokens and cost by provider, model and route")
    func usageAndCost() async throws {
        try await MockAnthropic.run { mock in
            let rules = try TemporaryRules("""
                version: 1
                providers:
                  local:
                    kind: openai
                    base_url: "\(mock.baseURL)/v1"
                    prices: { "llama3.1:8b": { input: 0.5, output: 1.5, cache_read: 0.05 } }
                  anthropic:
                    kind: anthropic
                    base_url: "\(mock.baseURL)"
                    prices:
                      claude-sonnet-4-5: { input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 }
                levels:
                  - { name: simple, max_score: 1, route: fast, estimated_seconds: 3 }
                  - { name: moderate, route: standard, estimated_seconds: 10 }
                routes:
                  fast: { action: stream, provider: local, model: "llama3.1:8b" }
                  standard: { action: stream, provider: anthropic, model: claude-sonnet-4-5 }
                  unpriced: { action: stream, provider: anthropic, model: claude-haiku-4-5 }
                rules:
                  - { id: compare, weight: 2, when: { any_keywords: [compare] } }
                """)
            defer { rules.remove() }
            var config = streamingConfiguration(mock)
            config.rulesPath = rules.path
            let app = try await buildApplication(configuration: config)
            try await app.test(.live) { client in
                let port = try #require(client.port)
                // OpenAI-compatible: prompt_tokens counts the cached tokens, which are taken out of the input.
                mock.enqueue(.stream([OpenAIChunk.delta(#"{"role":"assistant","content":"Hi"}"#), OpenAIChunk.delta("{}", finish: "stop"),
                                      OpenAIChunk.data(#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":100,"total_tokens":1100,"prompt_tokens_details":{"cached_tokens":400}}}"#),
                                      OpenAIChunk.done]))
                let local = try await streamChat(port: port, body: chatJSON("list the people"), path: "/mcp/chat")
                let localComplete = try #require(local.events("complete").first, "\(local.types)")
                #expect(localComplete["usage"] as? [String: Int]
                        == ["inputTokens": 600, "outputTokens": 100, "cacheReadTokens": 400, "cacheWriteTokens": 0])
                // (600 × 0.5 + 100 × 1.5 + 400 × 0.05) / 1e6
                #expect(localComplete["costUSD"] as? Double == 0.00047)

                // Anthropic: two calls (a tool round), each priced; the cache counts come in message_start.
                let start = SSE.event("message_start", #"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":1000,"cache_read_input_tokens":2000,"output_tokens":1}}}"#)
                mock.enqueue(.stream([start, SSE.textStart(0), SSE.text(0, "Comparing"), SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]))
                let claude = try await streamChat(port: port, body: chatJSON("compare the teams"), path: "/mcp/chat")
                let claudeComplete = try #require(claude.events("complete").first, "\(claude.types)")
                #expect(claudeComplete["usage"] as? [String: Int]
                        == ["inputTokens": 25, "outputTokens": 15, "cacheReadTokens": 2000, "cacheWriteTokens": 1000])
                // (25 × 3 + 15 × 15 + 2000 × 0.3 + 1000 × 3.75) / 1e6
                #expect(claudeComplete["costUSD"] as? Double == 0.00465)

                // A model without a price has no cost; the direct stream counts under the route "none".
                mock.enqueue(.stream(SSE.textAnswer(["plain"])))
                let unpriced = try await streamChat(port: port, body: #"{"messages":[{"role":"user","content":"hi"}],"route":"unpriced"}"#,
                                                    path: "/mcp/chat")
                #expect(unpriced.events("complete").first?.keys.contains("costUSD") == false, "\(unpriced.types)")
                mock.enqueue(.stream(SSE.textAnswer(["direct"])))
                let direct = try await streamChat(port: port, body: #"{"messages":[{"role":"user","content":"hi"}],"model":"claude-sonnet-4-5"}"#)
                let directCost: Double = (25 * 3 + 15 * 15) / 1e6
                #expect(direct.events("complete").first?["costUSD"] as? Double == directCost)

                let metrics = try await metricsText(port: port)
                func sample(_ name: String, _ labels: [String: String]) -> Double? {
                    metrics.split(separator: "\n").first { line in
                        line.hasPrefix(name + "{") && labels.allSatisfy { line.contains("\($0.key)=\"\($0.value)\"") }
                    }.flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
                }
                let fast = ["provider": "local", "model": "llama3.1:8b", "route": "fast"]
                #expect(sample("switchboard_model_tokens_total", fast.merging(["kind": "input"]) { $1 }) == 600)
                #expect(sample("switchboard_model_tokens_total", fast.merging(["kind": "cache_read"]) { $1 }) == 400)
                #expect(sample("switchboard_model_tokens_total", fast.merging(["kind": "output"]) { $1 }) == 100)
                #expect(sample("switchboard_model_cost_usd_total", fast) == 0.00047)
                let standard = ["provider": "anthropic", "model": "claude-sonnet-4-5", "route": "standard"]
                #expect(sample("switchboard_model_tokens_total", standard.merging(["kind": "cache_write"]) { $1 }) == 1000)
                #expect(sample("switchboard_model_cost_usd_total", standard) == 0.00465)
                #expect(sample("switchboard_model_calls_total", ["route": "unpriced", "model": "claude-haiku-4-5"]) == 1)
                #expect(sample("switchboard_model_cost_usd_total", ["route": "unpriced"]) == nil)
                #expect(sample("switchboard_model_calls_total", ["route": "none", "provider": "anthropic"]) == 1)
            }
        }
    }

    @Test("a chat that fell back stays on the fallback; each finished stream is recorded under what answered it; GET /rules/calibration compares the levels with them")
    func calibration() async throws {
        try await MockAnthropic.run { mock in
            let rules = try TemporaryRules("""
                version: 1
                providers:
                  local: { kind: openai, base_url: "\(mock.baseURL)/v1" }
                levels:
                  - { name: simple, max_score: 1, route: fast, estimated_seconds: 3 }
                  - { name: complex, route: slow, estimated_seconds: 20 }
                routes:
                  fast: { action: stream, provider: local, model: "llama3.1:8b", fallbacks: [{ model: claude-haiku-4-5 }] }
                  slow: { action: stream }
                rules:
                  - { id: compare, weight: 2, when: { any_keywords: [compare] } }
                """)
            defer { rules.remove() }
            var config = streamingConfiguration(mock)
            config.rulesPath = rules.path
            let databasePath = rules.directory.appendingPathComponent("switchboard.sqlite").path
            config.database = .sqlite(path: databasePath)
            let probe = ProbeTool(name: "route_probe")
            let app = try await buildApplication(configuration: config, tools: [probe])
            try await app.test(.live) { client in
                let port = try #require(client.port)
                // The local server is down; Claude answers after a tool round, its first text 300 ms in.
                mock.enqueue(.status(503, body: #"{"error":{"message":"busy","type":"server_error","code":null}}"#),
                             .stream([SSE.messageStart(), SSE.toolStart(0, id: "toolu_1", name: "route_probe"), SSE.inputJSON(0, "{}"), SSE.stop(0),
                                      SSE.messageDelta("tool_use"), SSE.messageStop]),
                             .stream([SSE.messageStart(), SSE.textStart(0), .pause(.milliseconds(300)), SSE.text(0, "Done"), SSE.stop(0),
                                      SSE.messageDelta("end_turn"), SSE.messageStop]))
                let stream = try await streamChat(port: port, body: chatJSON("list the people"), path: "/mcp/chat")
                #expect(stream.types.last == "complete", "\(stream.types)")
                // After its tool round the chat stayed on the fallback that answered: the local server was not asked again.
                #expect(stream.events("routing").count == 2)
                #expect(mock.received.count == 3)
                #expect(mock.received.last?.body["model"] as? String == "claude-haiku-4-5")

                let response = try await HTTPClient.shared.execute(
                    HTTPClientRequest(url: "http://127.0.0.1:\(port)/rules/calibration?min_samples=1"), timeout: .seconds(10))
                let report = try json(try await response.body.collect(upTo: 1 << 20))
                let levels = try #require(report["levels"] as? [[String: Any]])
                #expect(levels.map { $0["level"] as? String } == ["simple", "complex"])
                let simple = try #require(levels.first?["duration"] as? [String: Any])
                #expect(simple["count"] as? Int == 1)
                #expect(try #require(simple["medianSeconds"] as? Double) >= 0.3)
                #expect(levels.first?["configuredSeconds"] as? Double == 3)
                #expect(levels.last?["duration"] == nil, "no stream on complex yet")
                let routes = try #require(report["routes"] as? [[String: Any]])
                let fast = try #require(routes.first { $0["route"] as? String == "fast" })
                let firstText = try #require(fast["firstText"] as? [String: Any])
                #expect(try #require(firstText["medianSeconds"] as? Double) >= 0.3, "the first text came after the tool round and the pause")
                let suggestions = try #require(report["suggestions"] as? [String])
                #expect(suggestions.count == 1)
                #expect(suggestions.first?.hasPrefix("\(rules.path):5: level \"simple\": estimated_seconds 3 → ") == true, "\(suggestions)")
                #expect(report["minSamples"] as? Int == 1)
                let bad = try await HTTPClient.shared.execute(
                    HTTPClientRequest(url: "http://127.0.0.1:\(port)/rules/calibration?window=0"), timeout: .seconds(10))
                #expect(bad.status == .badRequest)
                #expect(try json(try await bad.body.collect(upTo: 1 << 20))["error"].flatMap { ($0 as? [String: Any])?["field"] as? String } == "window")
            }
            // The record, read from the database the server kept it in.
            let rows = try await SQLiteDatabase(path: databasePath).fetch("SELECT * FROM stream_records", [])
            #expect(rows.count == 1)
            let row = try #require(rows.first)
            #expect(row["level"]?.text == "simple")
            #expect(row["route"]?.text == "fast")
            #expect(row["provider"]?.text == "anthropic", "booked under the fallback that answered")
            #expect(row["model"]?.text == "claude-haiku-4-5")
            #expect(row["iterations"]?.int == 2)
            #expect(row["tool_calls"]?.int == 1)
            #expect(row["output_tokens"]?.int == 30)
            #expect(row["outcome"]?.text == "complete")
            let firstTextMs = try #require(row["first_text_ms"]?.int)
            #expect(firstTextMs >= 300)
            #expect(try #require(row["duration_ms"]?.int) >= firstTextMs)
        }
    }

    @Test("a provider's key is read from its variable when its client is made; an unset variable is a 503 naming it")
    func keyFromEnvironment() throws {
        let providers = ProviderModels(environment: { $0 == "LOCAL_KEY" ? "sk-local" : nil })
        let keyed = Provider(name: "local", kind: .openai, baseURL: "http://127.0.0.1:1/v1", apiKeyEnv: "LOCAL_KEY")
        #expect(try providers.model(for: keyed) is OpenAIClient)
        let missing = Provider(name: "cloud", kind: .openai, baseURL: "https://api.example/v1", apiKeyEnv: "CLOUD_KEY")
        let error = #expect(throws: APIError.self) { try providers.model(for: missing) }
        #expect(error?.status == .serviceUnavailable)
        #expect(error?.message.contains("CLOUD_KEY") == true)
        Task { await providers.shutdown() }
    }
}

/// The JSON answer of `POST /mcp/chat/analyze`.
func analyze(port: Int, _ body: String) async throws -> [String: Any] {
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/mcp/chat/analyze")
    request.method = .POST
    request.headers.add(name: "content-type", value: "application/json")
    request.body = .bytes(ByteBuffer(string: body))
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
    return try json(try await response.body.collect(upTo: 1 << 20))
}

/// The text of `GET /metrics`.
private func metricsText(port: Int) async throws -> String {
    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(10))
    return String(buffer: try await response.body.collect(upTo: 1 << 20))
}

/// The JSON answer of a GET.
private func get(port: Int, _ path: String) async throws -> [String: Any] {
    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .seconds(10))
    return try json(try await response.body.collect(upTo: 1 << 20))
}

/// Rules whose one route runs on a local OpenAI-compatible provider (the mock) and falls back to Claude.
func fallbackRulesYAML(_ mock: MockAnthropic) -> String {
    rulesFile(providers: "  local: { kind: openai, base_url: \"\(mock.baseURL)/v1\" }",
              levels: "  - { name: simple, route: fast, estimated_seconds: 3 }",
              routes: "  fast: { action: stream, provider: local, model: \"llama3.1:8b\", fallbacks: [{ model: claude-haiku-4-5 }] }")
}

/// A server whose one route runs on a local OpenAI-compatible provider (the mock) and falls back to Claude.
private func withFallbackServer(_ mock: MockAnthropic, _ body: @Sendable (Int) async throws -> Void) async throws {
    let rules = try TemporaryRules(fallbackRulesYAML(mock))
    defer { rules.remove() }
    var config = streamingConfiguration(mock)
    config.rulesPath = rules.path
    let app = try await buildApplication(configuration: config)
    try await app.test(.live) { client in try await body(try #require(client.port)) }
}
