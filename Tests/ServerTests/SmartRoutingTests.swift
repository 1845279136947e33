import AnthropicMock
import ChatCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Server

/// Rules with a fast route (haiku, at most 2 model calls), a standard one without a model, and an advising one.
private let routingRules = """
    version: 1
    levels:
      - { name: simple, max_score: 1, route: fast, estimated_seconds: 3 }
      - { name: moderate, max_score: 3, route: standard, estimated_seconds: 10 }
      - { name: complex, route: desktop, estimated_seconds: 25 }
    routes:
      fast: { action: stream, model: claude-haiku-4-5, max_iterations: 2 }
      standard: { action: stream }
      desktop: { action: advise, message: "Charts run faster in the desktop client." }
    rules:
      - { id: charts, weight: 4, when: { any_keywords: [chart] } }
      - { id: compare, weight: 2, when: { any_keywords: [compare] } }
    """

@Suite("POST /mcp/chat (smart routing)", .serialized, .timeLimit(.minutes(1)))
struct SmartRoutingTests {
    private func withServer(_ mock: MockAnthropic?, tools: [any Tool] = [], configure: (inout ServerConfiguration) -> Void = { _ in },
                            _ body: @Sendable (Int) async throws -> Void) async throws {
        let rules = try TemporaryRules(routingRules)
        defer { rules.remove() }
        var config = mock.map { streamingConfiguration($0) } ?? configuration(rules: nil)
        config.rulesPath = rules.path
        config.loop.model = "claude-sonnet-4-5"
        configure(&config)
        let app = try await buildApplication(configuration: config, tools: tools)
        try await app.test(.live) { client in try await body(try #require(client.port)) }
    }

    @Test("a simple chat streams on the route's model and iteration limit, whatever model the body names")
    func simpleStreams() async throws {
        try await MockAnthropic.run { mock in
            for index in 0..<3 {
                mock.enqueue(.stream(SSE.toolTurn(text: nil, tools: [(id: "t\(index)", name: "route_probe", fragments: ["{}"])])))
            }
            try await withServer(mock, tools: [ProbeTool(name: "route_probe")]) { port in
                let stream = try await streamChat(port: port, body: chatJSON("list the people", extra: #","model":"claude-opus-4-1""#),
                                                  path: "/mcp/chat")
                #expect(stream.status == 200)
                #expect(stream.header("content-type") == "text/event-stream; charset=utf-8")
                #expect(stream.header("x-accel-buffering") == "no")
                #expect(stream.header("x-switchboard-complexity") == "simple")
                #expect(stream.header("x-switchboard-route") == "fast")
                #expect(stream.header("x-switchboard-model") == "claude-haiku-4-5")
                #expect(stream.header("x-switchboard-rules-version")?.hasPrefix("sha256:") == true)
                #expect(Array(stream.types.prefix(3)) == ["session_start", "routing", "iteration_start"])
                // The routing event tells the decision and its reasons, as the preflight would.
                let routing = try #require(stream.events("routing").first)
                #expect(routing["complexity"] as? String == "simple")
                #expect(routing["route"] as? String == "fast")
                #expect(routing["action"] as? String == "stream")
                #expect(routing["provider"] as? String == "anthropic")
                #expect(routing["model"] as? String == "claude-haiku-4-5")
                #expect(routing["matchedRules"] as? [String] == [])
                #expect((routing["rulesVersion"] as? String)?.hasPrefix("sha256:") == true)
                let complete = try #require(stream.events("complete").first)
                #expect(complete["stopReason"] as? String == "max_iterations")
                #expect(complete["iterations"] as? Int == 2)
                #expect(mock.received.count == 2)
                #expect(mock.received.allSatisfy { $0.body["model"] as? String == "claude-haiku-4-5" })
            }
        }
    }

    @Test("a route without a model streams on the server's default model")
    func defaultModel() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["Berlin pays more."])))
            try await withServer(mock) { port in
                let stream = try await streamChat(port: port, body: chatJSON("compare Berlin and London"), path: "/mcp/chat")
                #expect(stream.header("x-switchboard-route") == "standard")
                #expect(stream.header("x-switchboard-model") == "claude-sonnet-4-5")
                #expect(stream.events("text_chunk").last?["accumulated"] as? String == "Berlin pays more.")
                #expect(mock.received.first?.body["model"] as? String == "claude-sonnet-4-5")
            }
        }
    }

    @Test("\"route\" in the body overrides the analysis (reported as forced by the request); an unknown one is a 400 listing the routes")
    func routeOverride() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["ok"])))
            try await withServer(mock) { port in
                let stream = try await streamChat(port: port, body: chatJSON("list the people", extra: #","route":"standard""#), path: "/mcp/chat")
                #expect(stream.header("x-switchboard-route") == "standard")
                let routing = try #require(stream.events("routing").first)
                #expect(routing["route"] as? String == "standard")
                #expect(routing["complexity"] as? String == "simple", "the analysis itself is unchanged")
                #expect(mock.received.first?.body["model"] as? String == "claude-sonnet-4-5")
                let unknown = try await streamChat(port: port, body: chatJSON("list the people", extra: #","route":"fastest""#), path: "/mcp/chat")
                #expect(unknown.status == 400)
                let error = try #require(unknown.body?["error"] as? [String: Any])
                #expect(error["field"] as? String == "route")
                #expect(error["message"] as? String == #"unknown route "fastest"; the routes are desktop, fast, standard"#)
                let advice = try await streamChat(port: port, body: chatJSON("list the people", extra: #","route":"desktop""#), path: "/mcp/chat")
                #expect(advice.body?["action"] as? String == "advise")
                #expect(advice.body?["routeForcedBy"] as? String == "request")
                #expect(mock.received.count == 1)
            }
        }
    }

    @Test("a complex chat gets advice as JSON and no model is called")
    func complexAdvises() async throws {
        try await MockAnthropic.run { mock in
            try await withServer(mock) { port in
                let answer = try await streamChat(port: port, body: chatJSON("chart the salaries and compare them"), path: "/mcp/chat")
                #expect(answer.status == 200)
                #expect(answer.header("content-type") == "application/json; charset=utf-8")
                let advice = try #require(answer.body)
                #expect(advice["action"] as? String == "advise")
                #expect(advice["route"] as? String == "desktop")
                #expect(advice["complexity"] as? String == "complex")
                #expect(advice["message"] as? String == "Charts run faster in the desktop client.")
                #expect((advice["matchedRules"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["charts", "compare"])
                #expect(mock.received.isEmpty)
            }
        }
    }

    @Test("advice asked for as a stream (Accept: text/event-stream): session_start, routing with the message, complete")
    func adviceAsStream() async throws {
        try await withServer(nil) { port in
            let stream = try await streamChat(port: port, body: chatJSON("chart the salaries and compare them"), path: "/mcp/chat",
                                              headers: [("accept", "text/event-stream")])
            #expect(stream.status == 200)
            #expect(stream.header("content-type") == "text/event-stream; charset=utf-8")
            #expect(stream.header("x-switchboard-route") == "desktop")
            #expect(stream.types == ["session_start", "routing", "complete"])
            let routing = try #require(stream.events("routing").first)
            #expect(routing["action"] as? String == "advise")
            #expect(routing["message"] as? String == "Charts run faster in the desktop client.")
            #expect(routing["matchedRules"] as? [String] == ["charts", "compare"])
            #expect(routing["provider"] is NSNull && routing["model"] is NSNull)
            #expect(stream.events("complete").first?["stopReason"] as? String == "advise")
            #expect(stream.arrivals.map(\.id) == ["1", "2", "3"])
        }
    }

    @Test("without an API key advice still works and a stream route answers 503; bad input is a 400 naming the field")
    func notConfiguredAndBadInput() async throws {
        try await withServer(nil) { port in
            let advice = try await streamChat(port: port, body: chatJSON("chart it"), path: "/mcp/chat")
            #expect(advice.status == 200)
            #expect(advice.body?["action"] as? String == "advise")
            let refused = try await streamChat(port: port, body: chatJSON("hello"), path: "/mcp/chat")
            #expect(refused.status == 503)
            #expect((refused.body?["error"] as? [String: Any])?["code"] as? String == "not_configured")
            let bad = try await streamChat(port: port, body: #"{"messages":[{"role":"robot","content":"hi"}]}"#, path: "/mcp/chat")
            #expect(bad.status == 400)
            #expect((bad.body?["error"] as? [String: Any])?["field"] as? String == "messages[0].role")
        }
    }

    @Test("a route's max_iterations never goes above the server's limit")
    func iterationsCappedByServer() async throws {
        try await MockAnthropic.run { mock in
            for index in 0..<3 {
                mock.enqueue(.stream(SSE.toolTurn(text: nil, tools: [(id: "t\(index)", name: "fast", fragments: ["{}"])])))
            }
            // The fast route allows 2 model calls; the server allows 1.
            try await withServer(mock, tools: [ProbeTool(name: "fast")], configure: { $0.loop.maxIterations = 1 }) { port in
                let stream = try await streamChat(port: port, body: chatJSON("list employees"), path: "/mcp/chat")
                #expect(stream.events("complete").first?["stopReason"] as? String == "max_iterations")
                #expect(stream.events("complete").first?["iterations"] as? Int == 1)
                #expect(mock.received.count == 1)
            }
        }
    }
}
