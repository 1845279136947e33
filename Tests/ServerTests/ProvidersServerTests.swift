import AnthropicMock
import AsyncHTTPClient
import ChatCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Routing
import Testing
import Upstream
@testable import Server

/// Rules whose simple route streams on a local OpenAI-compatible server (the mock at `baseURL`), the moderate one on
/// the built-in Anthropic provider.
private func providerRules(baseURL: String) -> String {
    """
    version: 1
    providers:
      local: { kind: openai, base_url: "\(baseURL)/v1" }
    levels:
      - { name: simple, max_score: 1, route: fast, estimated_seconds: 3 }
      - { name: moderate, route: standard, estimated_seconds: 10 }
    routes:
      fast: { action: stream, provider: local, model: "llama3.1:8b", max_iterations: 3 }
      standard: { action: stream }
    rules:
      - { id: compare, weight: 2, when: { any_keywords: [compare] } }
    """
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
private func analyze(port: Int, _ body: String) async throws -> [String: Any] {
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/mcp/chat/analyze")
    request.method = .POST
    request.headers.add(name: "content-type", value: "application/json")
    request.body = .bytes(ByteBuffer(string: body))
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
    return try json(try await response.body.collect(upTo: 1 << 20))
}

/// The JSON answer of a GET.
private func get(port: Int, _ path: String) async throws -> [String: Any] {
    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .seconds(10))
    return try json(try await response.body.collect(upTo: 1 << 20))
}

/// A server whose one route runs on a local OpenAI-compatible provider (the mock) and falls back to Claude.
private func withFallbackServer(_ mock: MockAnthropic, _ body: @Sendable (Int) async throws -> Void) async throws {
    let rules = try TemporaryRules("""
        version: 1
        providers:
          local: { kind: openai, base_url: "\(mock.baseURL)/v1" }
        levels:
          - { name: simple, route: fast, estimated_seconds: 3 }
        routes:
          fast: { action: stream, provider: local, model: "llama3.1:8b", fallbacks: [{ model: claude-haiku-4-5 }] }
        """)
    defer { rules.remove() }
    var config = streamingConfiguration(mock)
    config.rulesPath = rules.path
    let app = try await buildApplication(configuration: config)
    try await app.test(.live) { client in try await body(try #require(client.port)) }
}
