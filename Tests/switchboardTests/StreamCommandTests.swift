import AnthropicMock
import AsyncHTTPClient
import ChatCore
import Foundation
import NIOCore
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("switchboard stream", .timeLimit(.minutes(1)))
struct StreamCommandTests {
    @Test("prints each event as it arrives with its timings, then a summary")
    func streamsAChat() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Hello"), .pause(.milliseconds(400)),
                                  SSE.text(0, " there"), SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]))
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let server = try ServerProcess(directory: directory, arguments: [], environment: [
                "ANTHROPIC_API_KEY": "sk-ant-cli-test", "ANTHROPIC_BASE_URL": mock.baseURL,
            ])
            defer { server.stop() }
            let result = try await CLI.runAsync(["stream", "--url", "http://127.0.0.1:\(server.port)", "say", "hello"])
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            #expect(result.stderr.isEmpty, "a successful stream prints nothing on standard error")
            let lines = result.stdout.split(separator: "\n").map(String.init)
            let types = ["session_start", "iteration_start", "text_chunk", "text_chunk", "complete"]
            let eventLines = lines.filter { line in types.contains { line.contains(" \($0) ") } }
            #expect(eventLines.count == 5, "\(result.stdout)")
            let second = try #require(eventLines.last { $0.contains("text_chunk") })
            #expect(second.contains("\" there\""))
            // The Δ column of the chunk after the pause shows the pause.
            let delta = second.split(separator: "Δ")[1].split(separator: "ms")[0].trimmingCharacters(in: .whitespaces)
            #expect((Int(delta) ?? 0) >= 350, "\(second)")
            #expect(lines.last?.hasPrefix("5 events in ") == true)
            #expect(lines.last?.contains("first text after") == true)
            #expect(mock.received.first?.body["messages"] as? [[String: String]] == [["role": "user", "content": "say hello"]])
        }
    }

    @Test("--routed goes through smart routing: shows the route and streams, or prints the advice")
    func routed() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["Here they are."])))
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let server = try ServerProcess(directory: directory, arguments: [], environment: [
                "ANTHROPIC_API_KEY": "sk-ant-cli-test", "ANTHROPIC_BASE_URL": mock.baseURL,
            ])
            defer { server.stop() }
            let url = "http://127.0.0.1:\(server.port)"
            let simple = try await CLI.runAsync(["stream", "--routed", "--url", url, "give me list of employees with 5-10% increment"])
            #expect(simple.status == 0, "\(simple.stdout)")
            #expect(simple.stdout.hasPrefix("routed: simple → fast on claude-haiku-4-5\n"), "\(simple.stdout)")
            #expect(simple.stdout.contains("\"Here they are.\""))
            #expect(mock.received.first?.body["model"] as? String == "claude-haiku-4-5")

            let complex = try await CLI.runAsync(["stream", "--routed", "--url", url,
                                                  "chart salary trends by department and compare with last year"])
            #expect(complex.status == 0, "\(complex.stdout)")
            let lines = complex.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasPrefix("advice: complex → desktop (score ") == true, "\(complex.stdout)")
            #expect(lines.first?.contains("rules: charts, trends, comparison") == true, "\(complex.stdout)")
            #expect(mock.received.count == 1)
        }
    }
}

@Suite("Graceful shutdown", .serialized, .timeLimit(.minutes(1)))
struct ShutdownTests {
    @Test("SIGTERM: a stream gets its grace, then an error event server_shutdown (retryable); the process exits soon after")
    func shutdownSequence() async throws {
        try await MockAnthropic.run { mock in
            // The model starts answering, then takes far longer than the grace period.
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Thinking"), .pause(.seconds(30)),
                                  SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]))
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let server = try ServerProcess(directory: directory, arguments: [], environment: [
                "ANTHROPIC_API_KEY": "sk-ant-cli-test", "ANTHROPIC_BASE_URL": mock.baseURL, "SWITCHBOARD_SHUTDOWN_GRACE": "0.5",
            ])
            defer { server.stop() }
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(server.port)/mcp/chat/stream")
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: #"{"messages":[{"role":"user","content":"hi"}],"accumulated":false}"#))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            var decoder = SSEDecoder()
            var events: [[String: Any]] = []
            var signalled: ContinuousClock.Instant?
            for try await chunk in response.body {
                try decoder.feed(chunk.readableBytesView) { event in
                    events.append((try? JSONSerialization.jsonObject(with: Data(event.data.utf8))) as? [String: Any] ?? [:])
                }
                if signalled == nil, events.contains(where: { $0["type"] as? String == "text_chunk" }) {
                    kill(server.process.processIdentifier, SIGTERM)
                    signalled = .now
                }
            }
            let sent = try #require(signalled)
            let types = events.map { $0["type"] as? String ?? "?" }
            #expect(types == ["session_start", "iteration_start", "text_chunk", "error"], "\(types)")
            #expect(events.last?["code"] as? String == "server_shutdown")
            #expect(events.last?["retryable"] as? Bool == true)
            // The grace was given: the error came no sooner than about 0.5 s after the signal (the server's
            // event-loop timer and this test's clock may disagree by a millisecond, so allow 50 ms).
            #expect(ContinuousClock.now - sent >= .milliseconds(450))
            // The process exits within the grace plus 2 s.
            #expect(await eventually(within: .seconds(3)) { !server.process.isRunning },
                    "\((try? String(contentsOf: server.logURL, encoding: .utf8)) ?? "")")
            #expect(server.process.terminationStatus == 0, "\((try? String(contentsOf: server.logURL, encoding: .utf8)) ?? "")")
        }
    }
}

@Suite("rules calibrate", .serialized, .timeLimit(.minutes(3)), .cpuQuiet)
struct CalibrateCommandTests {
    @Test("streams the server finished (kept when it stops) are compared with the levels, and a line to paste is suggested")
    func calibrate() async throws {
        try await MockAnthropic.run { mock in
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let rules = """
                version: 1
                levels:
                  - { name: simple, max_score: 1, route: fast, estimated_seconds: 3 }
                  - { name: complex, route: slow, estimated_seconds: 20 }
                routes:
                  fast: { action: stream }
                  slow: { action: stream }
                rules:
                  - { id: compare, weight: 2, when: { any_keywords: [compare] } }
                """
            try rules.write(to: directory.appendingPathComponent("rules.yaml"), atomically: true, encoding: .utf8)
            let server = try ServerProcess(directory: directory, arguments: [], environment: [
                "ANTHROPIC_API_KEY": "sk-ant-cli-test", "ANTHROPIC_BASE_URL": mock.baseURL,
            ])
            defer { server.stop() }
            // Three chats on the simple level, each about 0.4 s long.
            for _ in 1...3 {
                mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), .pause(.milliseconds(400)), SSE.text(0, "Hi"), SSE.stop(0),
                                      SSE.messageDelta("end_turn"), SSE.messageStop]))
                let chat = try await CLI.runAsync(["stream", "--routed", "--url", "http://127.0.0.1:\(server.port)", "hello"])
                #expect(chat.status == 0, "\(chat.stdout)")
            }
            // Stopping flushes what the recorder still holds.
            server.stop()
            #expect(server.process.terminationStatus == 0)
            let result = try await CLI.runAsync(["rules", "calibrate", "--min-samples", "3", "rules.yaml"], in: directory)
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            let lines = result.stdout.split(separator: "\n").map(String.init)
            let simple = try #require(lines.first { $0.hasPrefix("  simple") }, "\(result.stdout)")
            #expect(simple.split(separator: " ", omittingEmptySubsequences: true).prefix(5).map(String.init)
                    == ["simple", "fast", "3", "s", "3"], "configured 3 s, three streams: \(simple)")
            #expect(lines.contains { $0.hasPrefix("  complex  slow   20 s        0 ") }, "\(result.stdout)")
            // Each stream took 0.4 s or a little more: the suggestion is their median, to the half second.
            let suggestion = try #require(lines.first { $0.hasPrefix("rules.yaml:3: level \"simple\": estimated_seconds 3 → ") },
                                          "\(result.stdout)")
            let suggested = try #require(suggestion.split(separator: " ").dropFirst(6).first.flatMap { Double($0) }, "\(suggestion)")
            let median = try #require(suggestion.components(separatedBy: "median ").last?.split(separator: " ").first.flatMap { Double($0) })
            #expect(median >= 0.4, "\(suggestion)")
            // The median to the half second (0.5 or 1 on an idle machine; a busy one makes the streams longer).
            #expect(suggested == (median * 2).rounded() / 2 && suggested < 3, "\(suggestion)")
            #expect(lines.contains("      - { name: simple, max_score: 1, route: fast, estimated_seconds: \(suggested.compactText) }"),
                    "\(result.stdout)")
        }
    }
}
