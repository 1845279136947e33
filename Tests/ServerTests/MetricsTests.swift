import AnthropicMock
import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import TestSupport
import Testing
@testable import Server

/// The value of the sample of `metric` whose labels include all of `labels` (`name="value"` pairs), if any.
private func sample(_ text: String, _ metric: String, _ labels: [String] = []) -> Double? {
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        let parts = line.split(separator: " ")
        guard parts.count == 2 else { continue }
        let series = parts[0]
        guard series == metric || series.hasPrefix(metric + "{") else { continue }
        if labels.allSatisfy({ series.contains($0) }) { return Double(parts[1]) }
    }
    return nil
}

private func scrape(_ port: Int) async throws -> (String, String?) {
    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(5))
    let body = try await response.body.collect(upTo: 1 << 20)
    return (String(buffer: body), response.headers.first(name: "content-type"))
}

@Suite("GET /metrics", .serialized, .timeLimit(.minutes(1)))
struct MetricsTests {
    @Test("requests, streams, events, tools, analyses, upstream errors and rules reloads are counted")
    func counts() async throws {
        let rules = try TemporaryRules(chartRules(weight: 4))
        defer { rules.remove() }
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.toolTurn(text: "Checking.", tools: [(id: "toolu_m", name: "metric_probe", fragments: ["{}"])])),
                         .stream(SSE.textAnswer(["Done", "."])),
                         .status(401, body: SSE.errorBody("authentication_error", "invalid x-api-key")))
            var config = streamingConfiguration(mock)
            config.rulesPath = rules.path
            config.logLevel = .trace
            let app = try await buildApplication(configuration: config, tools: [ProbeTool(name: "metric_probe")])
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let good = try await streamChat(port: port, body: chatJSON("list them"))
                #expect(good.types.last == "complete")
                let failed = try await streamChat(port: port, body: chatJSON("again"))
                #expect(failed.types.last == "error")
                let failedCode = try #require(failed.events("error").first?["code"] as? String)
                _ = try await streamChat(port: port, body: #"{"messages":[]}"#)
                try await client.execute(uri: "/mcp/chat/analyze", method: .post, headers: jsonHeaders, body: chatBody("chart it")) { _ in }
                try await client.execute(uri: "/mcp/chat/analyze", method: .post, headers: jsonHeaders, body: chatBody("chart that")) { _ in }
                try rules.write(chartRules(weight: 5))
                #expect(await eventually { (try? await scrape(port).0).flatMap { sample($0, "switchboard_rules_reloads_total", [#"result="accepted""#]) } == 1 })
                try rules.write("version: 1\nlevels: [")
                #expect(await eventually { (try? await scrape(port).0).flatMap { sample($0, "switchboard_rules_reloads_total", [#"result="rejected""#]) } == 1 })

                // The middleware counts a stream when its body is done, just after the client has it all.
                #expect(await eventually {
                    (try? await scrape(port).0).flatMap { sample($0, "switchboard_http_requests_total", [#"path="/mcp/chat/stream""#, #"status="200""#]) } == 2
                })
                let (text, contentType) = try await scrape(port)
                #expect(contentType == "text/plain; version=0.0.4; charset=utf-8")
                #expect(sample(text, "switchboard_http_requests_total", [#"method="POST""#, #"path="/mcp/chat/analyze""#, #"status="200""#]) == 2)
                #expect(sample(text, "switchboard_http_requests_total", [#"path="/mcp/chat/stream""#, #"status="400""#]) == 1)
                #expect(sample(text, "switchboard_streams_total", [#"outcome="complete""#]) == 1)
                #expect(sample(text, "switchboard_streams_total", [#"outcome="error""#]) == 1)
                #expect(sample(text, "switchboard_stream_errors_total", [#"code="\#(failedCode)""#]) == 1)
                #expect(sample(text, "switchboard_streams_open") == 0)
                #expect(sample(text, "switchboard_stream_events_total") == Double(good.arrivals.count + failed.arrivals.count))
                // The model's events (its text and tool call) were written where the upstream was read: the stream
                // runs on its connection's event loop and reads the upstream there.
                let modelEvents = good.events("text_chunk").count + good.events("tool_detected").count
                #expect(modelEvents >= 3)
                #expect(sample(text, "switchboard_stream_events_relayed_total") == Double(modelEvents))
                #expect(sample(text, "switchboard_tool_calls_total", [#"tool="metric_probe""#, #"status="completed""#]) == 1)
                #expect(sample(text, "switchboard_tool_duration_seconds_count", [#"tool="metric_probe""#]) == 1)
                #expect(sample(text, "switchboard_analyses_total", [#"complexity="complex""#, #"route="desktop""#, #"endpoint="analyze""#]) == 2)
                // The two preflights, and the two streams (analysed for their records, not routed).
                #expect(sample(text, "switchboard_analyses_total", [#"endpoint="stream""#]) == 2)
                #expect(sample(text, "switchboard_analysis_duration_seconds_count") == 4)
                #expect(sample(text, "switchboard_stream_duration_seconds_count") == 2)
                #expect(!text.contains(AnthropicConfigurationForTests.apiKey))
            }
        }
    }

    @Test("an open stream shows in switchboard_streams_open until it ends")
    func openStreams() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Hi"), .pause(.milliseconds(800)),
                                  SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]))
            let app = try await buildApplication(configuration: streamingConfiguration(mock))
            try await app.test(.live) { client in
                let port = try #require(client.port)
                async let stream = streamChat(port: port, body: chatJSON("hi"))
                #expect(await eventually { (try? await scrape(port).0).flatMap { sample($0, "switchboard_streams_open") } == 1 })
                _ = try await stream
                #expect(await eventually { (try? await scrape(port).0).flatMap { sample($0, "switchboard_streams_open") } == 0 })
            }
        }
    }
}
