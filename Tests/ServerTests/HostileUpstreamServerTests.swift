import AnthropicMock
import ChatCore
import Foundation
import NIOCore
import Synchronization
import TestSupport
import Testing
@testable import Server

/// What a model service's answer can do to the server around the call: its counts reach the metrics and the
/// key's budget, its length the chat's model calls; and what a key's revocation, a Host header or a replaced head
/// does to a stream.
@Suite("Hostile upstream, through the server", .serialized, .timeLimit(.minutes(1)))
struct HostileUpstreamServerTests {
    private var security: SecurityTests { SecurityTests() }

    @Test("negative and absurd token counts: the metrics render, no key is refunded, no counter goes below zero or past the ceiling")
    func negativeUsage() async throws {
        try await MockAnthropic.run { mock in
            // input_tokens -1 and output_tokens -5, then 8.9e15 output: each clamped where it is read.
            mock.enqueue(.stream([SSE.event("message_start", #"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":-1,"output_tokens":1}}}"#),
                                  SSE.textStart(0), SSE.text(0, "hi"), SSE.stop(0), SSE.messageDelta("end_turn", outputTokens: -5), SSE.messageStop]),
                         .stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "hi"), SSE.stop(0),
                                  SSE.event("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":8.9e15}}"#),
                                  SSE.messageStop]))
            try await security.withServer(mock, keys: keysYAML(webLimits: "{ output_tokens_per_day: 100000000 }")) { port, _, metrics in
                let first = try await streamChat(port: port, body: chatJSON("hi"), headers: [("authorization", "Bearer \(webKey)")])
                let usage = try #require(first.events("complete").first?["usage"] as? [String: Any])
                #expect(usage["inputTokens"] as? Int == 0 && usage["outputTokens"] as? Int == 0, "\(usage)")
                let second = try await streamChat(port: port, body: chatJSON("hi"), headers: [("authorization", "Bearer \(webKey)")])
                #expect((second.events("complete").first?["usage"] as? [String: Any])?["outputTokens"] as? Int == Usage.maxTokensPerCall)
                let text = String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
                // The first call's -5 read as 0, so it was charged what it relayed (1 token for "hi"); the second its ceiling.
                #expect(text.contains(#"switchboard_key_tokens_total{key="web",direction="output"} \#(Usage.maxTokensPerCall + 1)"#), "\(text.prefix(4000))")
                let negative = text.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.split(separator: " ").last?.hasPrefix("-") == true }
                #expect(negative.isEmpty, "no negative sample: \(negative)")
            }
        }
    }

    @Test("the daily output budget is checked before every model call: a 10-token key's chat ends after its first call with stopReason budget")
    func budgetBetweenCalls() async throws {
        try await MockAnthropic.run { mock in
            // Each turn asks for a tool and says it produced 100 tokens; without the check the loop runs 6 calls.
            for number in 0..<6 {
                mock.enqueue(.stream(SSE.toolTurn(text: "looking", tools: [(id: "toolu_\(number)", name: "no_such_tool", fragments: ["{}"])])
                    .map { piece in
                        if case .send(let text) = piece, text.contains("message_delta") {
                            return SSE.messageDelta("tool_use", outputTokens: 100)
                        }
                        return piece
                    }))
            }
            try await security.withServer(mock, keys: keysYAML(webLimits: "{ output_tokens_per_day: 10 }")) { port, _, _ in
                let stream = try await streamChat(port: port, body: chatJSON("list everyone"), headers: [("authorization", "Bearer \(webKey)")])
                let complete = try #require(stream.events("complete").first, "\(stream.types)")
                #expect(complete["stopReason"] as? String == "budget")
                #expect(mock.received.count == 1, "one model call, not six")
                #expect(stream.types.filter { $0 == "iteration_start" }.count == 2, "the second iteration began and ended before its call")
                // The next chat is refused at admission.
                let refused = try await security.request(port, "/mcp/chat/stream", key: webKey)
                #expect((refused.status, refused.code) == (429, "budget_exhausted"))
            }
        }
    }

    @Test("a key revoked while its stream runs: the stream ends with key_revoked within a second of the reload")
    func revokedStreamEnds() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "first"), .pause(.seconds(20)), SSE.text(0, "never"),
                                  SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]))
            try await security.withServer(mock) { port, file, _ in
                let clock = ContinuousClock()
                let revokedAt = Mutex<ContinuousClock.Instant?>(nil)
                async let stream = streamChat(port: port, body: chatJSON("hi"), headers: [("authorization", "Bearer \(webKey)")])
                #expect(await eventually(within: .seconds(5)) { !mock.sent.isEmpty })
                try await Task.sleep(for: .milliseconds(200))
                try Data((keysYAML() + "\nrevoked: [web]\n").utf8).write(to: URL(fileURLWithPath: file.path))
                revokedAt.withLock { $0 = clock.now }
                let received = try await stream
                let error = try #require(received.events("error").first, "\(received.types)")
                #expect(error["code"] as? String == "key_revoked")
                let ended = try #require(received.arrivals.last?.at)
                #expect(ended - revokedAt.withLock({ $0! }) < .seconds(2), "within the poll interval and a margin")
                #expect(!received.arrivals.contains { ($0.json["content"] as? String)?.contains("never") == true })
            }
        }
    }

    @Test("a compatible endpoint's held head replaced by a 429: the request metrics count the 429 the client got, not a 200")
    func replacedHeadCounted() async throws {
        try await MockAnthropic.run { mock in
            for _ in 0..<3 { mock.enqueue(.status(429, headers: ["retry-after": "0"], body: SSE.errorBody("rate_limit_error", "slow down"))) }
            try await security.withServer(mock, keys: keysYAML(webLimits: "{ output_tokens_per_day: 1000 }")) { port, _, metrics in
                let body = #"{"model":"claude-sonnet-4-5","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
                let answer = try await security.request(port, "/v1/chat/completions", key: webKey, body: body)
                #expect(answer.status == 429)
                // Counted once the body is written, a moment after the client read it.
                func lines() -> [Substring] {
                    String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self).split(separator: "\n")
                        .filter { $0.hasPrefix("switchboard_http_requests_total") && $0.contains("/v1/chat/completions") }
                }
                #expect(await eventually(within: .seconds(5)) { !lines().isEmpty })
                #expect(lines().contains { $0.contains(#"status="429""#) }, "\(lines())")
                #expect(!lines().contains { $0.contains(#"status="200""#) }, "\(lines())")
            }
        }
    }

    @Test("a request with no Host header, or with two, is refused; one Host is answered")
    func hostHeaders() async throws {
        try await security.withServer { port, _, _ in
            #expect(await rawGetStatus(port: port, target: "/rules", headers: [("Host", "")]) == 400, "no Host")
            #expect(await rawGetStatus(port: port, target: "/rules", headers: [("Host", "127.0.0.1"), ("Host", "evil.example")]) == 400, "two")
            #expect(await rawGetStatus(port: port, target: "/rules", headers: [("Host", "127.0.0.1")]) == 401, "one: on to the key check")
            #expect(await rawGetStatus(port: port, target: "/health", headers: [("Host", "")]) == 200, "a probe answers any host")
        }
    }
}
