import AnthropicMock
import ChatCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Storage
import Testing
import TestSupport
import Tools
@testable import Server

@Suite("POST /mcp/chat/stream", .serialized, .timeLimit(.minutes(1)))
struct StreamEndpointTests {
    /// Runs the app (with `tools`) against the mock upstream and gives the test its port.
    private func withServer(_ mock: MockAnthropic, tools: [any Tool] = [], keepalive: Duration = .seconds(15),
                            configure: (inout ServerConfiguration) -> Void = { _ in },
                            _ body: @Sendable (Int) async throws -> Void) async throws {
        var config = streamingConfiguration(mock, keepalive: keepalive)
        configure(&config)
        let app = try await buildApplication(configuration: config, tools: tools)
        try await app.test(.live) { client in
            try await body(try #require(client.port))
        }
    }

    @Test("text only: headers, event order, ids, timestamps and fields")
    func textOnly() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["Hello", ", ", "world"])))
            try await withServer(mock) { port in
                let stream = try await streamChat(port: port, body: chatJSON("hi", extra: #","system":"be kind","model":"claude-haiku-4-5""#))
                #expect(stream.status == 200)
                #expect(stream.header("content-type") == "text/event-stream; charset=utf-8")
                #expect(stream.header("cache-control") == "no-cache, no-transform")
                #expect(stream.header("x-accel-buffering") == "no")
                #expect(stream.header("content-length") == nil)
                #expect(stream.header("content-encoding") == nil)
                #expect(stream.types == ["session_start", "iteration_start", "text_chunk", "text_chunk", "text_chunk", "complete"])
                #expect(stream.arrivals.map(\.id) == (1...6).map { String($0) })
                for arrival in stream.arrivals {
                    let timestamp = try #require(arrival.json["timestamp"] as? String)
                    #expect(timestamp.count == 24 && timestamp.hasSuffix("Z"), "\(timestamp)")
                }
                // INSTANCE.UUID: the instance that holds it, then a UUID.
                let sessionId = try #require(stream.events("session_start").first?["sessionId"] as? String)
                let parts = sessionId.split(separator: ".", maxSplits: 1)
                #expect(parts.count == 2 && parts.first.map(String.init) == stream.header("x-switchboard-instance") && parts.last?.count == 36,
                        "\(sessionId)")
                #expect(stream.events("text_chunk").map { $0["accumulated"] as? String } == ["Hello", "Hello, ", "Hello, world"])
                let complete = try #require(stream.events("complete").first)
                #expect(complete["iterations"] as? Int == 1)
                #expect(complete["stopReason"] as? String == "end_turn")
                #expect(complete["usage"] as? [String: Int] == ["inputTokens": 25, "outputTokens": 15, "cacheReadTokens": 0, "cacheWriteTokens": 0])
                #expect(complete["totalTimeMs"] is Int)
                let sent = try #require(mock.received.first)
                // The system prompt as one text block carrying a prompt-cache breakpoint.
                let system = try #require(sent.body["system"] as? [[String: Any]])
                #expect(system.first?["text"] as? String == "be kind")
                #expect((system.first?["cache_control"] as? [String: String]) == ["type": "ephemeral"])
                #expect(sent.body["model"] as? String == "claude-haiku-4-5")
            }
        }
    }

    @Test("one tool: detected, executed with timings, and its result sent back with the assistant turn unchanged")
    func oneTool() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.toolTurn(text: "Let me check.", tools: [
                (id: "toolu_1", name: "lookup_people", fragments: [#"{"min_increment""#, #": 5, "max_increment": 10}"#]),
            ])), .stream(SSE.textAnswer(["Found ", "3."])))
            let tool = ProbeTool(name: "lookup_people", delay: .milliseconds(50))
            try await withServer(mock, tools: [tool]) { port in
                let stream = try await streamChat(port: port, body: chatJSON("give me list of employees with 5-10% increment"))
                #expect(stream.types == ["session_start", "iteration_start", "text_chunk", "tool_detected", "tools_executing",
                                         "tool_progress", "tool_progress", "iteration_start", "text_chunk", "text_chunk", "complete"])
                let detected = try #require(stream.events("tool_detected").first)
                #expect(detected["tool"] as? String == "lookup_people")
                #expect(detected["toolUseId"] as? String == "toolu_1")
                #expect(detected["message"] as? String == "Preparing to use: lookup_people")
                #expect(stream.events("tools_executing").first?["tools"] as? [String] == ["lookup_people"])
                let progress = stream.events("tool_progress")
                #expect(progress.map { $0["status"] as? String } == ["executing", "completed"])
                #expect(progress.last?["progress"] as? [String: Int] == ["current": 1, "total": 1])
                let ms = try #require(progress.last?["executionTimeMs"] as? Int)
                #expect(ms >= 50)
                #expect(progress.last?["executionTime"] as? String == "\(ms)ms")
                #expect(stream.events("text_chunk").last?["accumulated"] as? String == "Let me check.Found 3.")
                #expect(stream.events("complete").first?["iterations"] as? Int == 2)
                #expect(tool.inputs == [.object(["min_increment": .number(5), "max_increment": .number(10)])])

                // The follow-up: the user turn, the assistant turn as received, then one tool_result per tool_use.
                #expect(mock.received.count == 2)
                let messages = try #require(mock.received.last?.body["messages"] as? [[String: Any]])
                #expect(messages.map { $0["role"] as? String } == ["user", "assistant", "user"])
                let assistant = try #require(messages[1]["content"] as? [[String: Any]])
                #expect(assistant.count == 2)
                #expect(assistant[0]["text"] as? String == "Let me check.")
                #expect(assistant[1]["type"] as? String == "tool_use")
                #expect(assistant[1]["id"] as? String == "toolu_1")
                #expect(assistant[1]["input"] as? [String: Int] == ["min_increment": 5, "max_increment": 10])
                let results = try #require(messages[2]["content"] as? [[String: Any]])
                #expect(results.count == 1)
                #expect(results[0]["type"] as? String == "tool_result")
                #expect(results[0]["tool_use_id"] as? String == "toolu_1")
                #expect(results[0]["content"] as? String == #"{"tool":"lookup_people","rows":3}"#)
                #expect(results[0]["is_error"] == nil)
            }
        }
    }

    @Test("the seed chat: the model calls get_employees and the HR database answers")
    func seedChat() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.toolTurn(text: "I'll look that up.", tools: [
                (id: "toolu_hr", name: "get_employees", fragments: [#"{"min_increment_pct": 5, "#, #""max_increment_pct": 10}"#]),
            ])), .stream(SSE.textAnswer(["Here are the employees."])))
            try await withServer(mock) { port in
                let stream = try await streamChat(port: port, body: chatJSON("give me list of employees with 5-10% increment"))
                #expect(stream.events("tool_progress").last?["status"] as? String == "completed")
                #expect(stream.types.last == "complete")
                let tools = try #require(mock.received.first?.body["tools"] as? [[String: Any]])
                #expect(Set(tools.compactMap { $0["name"] as? String }).isSuperset(of: [
                    "get_employees", "get_employee", "get_departments", "get_salary_stats", "get_increment_distribution"]))
                let messages = try #require(mock.received.last?.body["messages"] as? [[String: Any]])
                let result = try #require((messages.last?["content"] as? [[String: Any]])?.first)
                #expect(result["is_error"] == nil)
                let content = try #require(result["content"] as? String)
                let answer = try #require(try JSONSerialization.jsonObject(with: Data(content.utf8)) as? [String: Any])
                #expect((answer["total"] as? Int ?? 0) > 0)
                let employees = try #require(answer["employees"] as? [[String: Any]])
                #expect(employees.allSatisfy { (5...10).contains($0["incrementPct"] as? Double ?? -1) })
            }
        }
    }

    @Test("parallel tools run at the same time; failures and unknown tools become error results")
    func parallelTools() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.toolTurn(text: nil, tools: [
                (id: "t_slow", name: "slow", fragments: ["{}"]),
                (id: "t_fast", name: "fast", fragments: ["{}"]),
                (id: "t_bad", name: "broken", fragments: ["{}"]),
                (id: "t_none", name: "no_such_tool", fragments: ["{}"]),
            ])), .stream(SSE.textAnswer(["Done."])))
            let slow = ProbeTool(name: "slow", delay: .milliseconds(400))
            let fast = ProbeTool(name: "fast", delay: .milliseconds(50))
            let broken = ProbeTool(name: "broken", fails: true)
            try await withServer(mock, tools: [slow, fast, broken]) { port in
                let stream = try await streamChat(port: port, body: chatJSON("compare"))
                let progress = stream.events("tool_progress")
                #expect(progress.prefix(4).allSatisfy { $0["status"] as? String == "executing" })
                let finished = progress.dropFirst(4)
                #expect(finished.map { $0["progress"] as? [String: Int] }.map { $0?["current"] } == [1, 2, 3, 4])
                #expect(finished.last?["toolUseId"] as? String == "t_slow")
                #expect(finished.first { $0["toolUseId"] as? String == "t_bad" }?["status"] as? String == "failed")
                #expect((finished.first { $0["toolUseId"] as? String == "t_none" }?["error"] as? String)?.contains("Unknown tool") == true)
                // Concurrent: each started before the other finished (one after the other, one would start after
                // the other's end).
                let starts = slow.started + fast.started
                let ends = slow.finished + fast.finished
                #expect(starts.count == 2 && ends.count == 2)
                #expect(starts.max()! < ends.min()!)

                let messages = try #require(mock.received.last?.body["messages"] as? [[String: Any]])
                let results = try #require(messages.last?["content"] as? [[String: Any]])
                #expect(results.map { $0["tool_use_id"] as? String } == ["t_slow", "t_fast", "t_bad", "t_none"])
                #expect(results.map { $0["is_error"] as? Bool } == [nil, nil, true, true])
            }
        }
    }

    @Test("the head and session_start go out before the upstream answers; keepalives continue while tools run")
    func earlyHeadAndToolKeepalive() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.delayed(.milliseconds(400), .stream(SSE.toolTurn(text: nil, tools: [(id: "t1", name: "slow", fragments: ["{}"])]))),
                         .stream(SSE.textAnswer(["done"])))
            let slow = ProbeTool(name: "slow", delay: .milliseconds(600))
            try await withServer(mock, tools: [slow], keepalive: .milliseconds(100)) { port in
                let stream = try await streamChat(port: port, body: chatJSON("hi"))
                let start = try #require(stream.arrivals.first)
                #expect(start.type == "session_start")
                // Causality, not milliseconds: the client had session_start before the upstream said a word.
                let upstreamAnswered = try #require(mock.answered.first)
                #expect(start.at < upstreamAnswered)
                let executing = try #require(stream.arrivals.first { $0.type == "tools_executing" }).at
                let finished = try #require(stream.arrivals.first { $0.json["status"] as? String == "completed" }).at
                #expect(stream.keepalives.contains { $0 > executing && $0 < finished })
            }
        }
    }

    @Test("the head, session_start and iteration_start go out together, before the upstream answers")
    func headWithFirstEvents() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.delayed(.milliseconds(400), .stream(SSE.textAnswer(["done"]))))
            try await withServer(mock) { port in
                let body = chatJSON("hi")
                let request = "POST /mcp/chat/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
                // The client stays until the upstream answered: hanging up at once would cancel the chat, sometimes
                // before its upstream connection was even made (and so before the request reached the mock).
                let first = try #require(await rawFirstReceive(port: port, request: request, keepOpen: .seconds(2)))
                let text = String(decoding: first.bytes, as: UTF8.self)
                // One write: the client's first read holds the head and both events of the moment before the model call
                // (one packet, one wake-up of the client), and none of the model's.
                #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
                #expect(text.contains("\"type\":\"session_start\""))
                #expect(text.contains("\"type\":\"iteration_start\""))
                #expect(!text.contains("text_chunk"))
                #expect(!text.lowercased().contains("x-switchboard-hold-head"))
                // And it went out before the upstream said a word (its answer comes 400 ms after the request).
                let deadline = ContinuousClock.now + .seconds(5)
                while mock.answered.isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                let upstreamAnswered = try #require(mock.answered.first)
                #expect(first.at < upstreamAnswered)
            }
        }
    }

    @Test("a tool that runs past its timeout is reported failed and the model hears why")
    func toolTimeout() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.toolTurn(text: nil, tools: [(id: "t1", name: "stuck", fragments: ["{}"])])),
                         .stream(SSE.textAnswer(["sorry"])))
            let stuck = ProbeTool(name: "stuck", delay: .seconds(30))
            try await withServer(mock, tools: [stuck], configure: { $0.loop.toolTimeout = .milliseconds(200) }) { port in
                let stream = try await streamChat(port: port, body: chatJSON("hi"))
                let failed = try #require(stream.events("tool_progress").last)
                #expect(failed["status"] as? String == "failed")
                #expect((failed["error"] as? String)?.contains("timed out after 200 ms") == true)
                // Stopped by the timeout, long before the tool's own 30 s were up.
                let ms = try #require(failed["executionTimeMs"] as? Int)
                #expect(ms >= 200 && ms < 30_000)
                #expect(stuck.cancelled.count == 1)
                let messages = try #require(mock.received.last?.body["messages"] as? [[String: Any]])
                let result = try #require((messages.last?["content"] as? [[String: Any]])?.first)
                #expect(result["is_error"] as? Bool == true)
                #expect(stream.types.last == "complete")
            }
        }
    }

    @Test("stops at the iteration limit with stopReason max_iterations")
    func maxIterations() async throws {
        try await MockAnthropic.run { mock in
            for index in 0..<3 {
                mock.enqueue(.stream(SSE.toolTurn(text: nil, tools: [(id: "t\(index)", name: "fast", fragments: ["{}"])])))
            }
            try await withServer(mock, tools: [ProbeTool(name: "fast")], configure: { $0.loop.maxIterations = 2 }) { port in
                let stream = try await streamChat(port: port, body: chatJSON("loop"))
                #expect(stream.events("iteration_start").map { $0["iteration"] as? Int } == [1, 2])
                let complete = try #require(stream.events("complete").first)
                #expect(complete["stopReason"] as? String == "max_iterations")
                #expect(complete["iterations"] as? Int == 2)
                #expect(complete["usage"] as? [String: Int] == ["inputTokens": 50, "outputTokens": 30, "cacheReadTokens": 0, "cacheWriteTokens": 0])
                #expect(mock.received.count == 2)
            }
        }
    }

    @Test("max_tokens with a cut-off tool call runs no tool and says so")
    func truncatedToolInput() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([SSE.messageStart(), SSE.toolStart(0, id: "toolu_1", name: "fast"), SSE.inputJSON(0, #"{"a": "#),
                                  SSE.messageDelta("max_tokens"), SSE.messageStop]))
            let tool = ProbeTool(name: "fast")
            try await withServer(mock, tools: [tool]) { port in
                let stream = try await streamChat(port: port, body: chatJSON("go"))
                #expect(stream.types == ["session_start", "iteration_start", "tool_detected", "complete"])
                #expect(stream.events("complete").first?["stopReason"] as? String == "max_tokens")
                #expect(tool.started.isEmpty)
            }
        }
    }

    @Test("delivery is incremental: text before an upstream pause arrives before the pause ends")
    func incremental() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "First"), .pause(.milliseconds(500)),
                                  SSE.text(0, " second"), SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]))
            try await withServer(mock) { port in
                let stream = try await streamChat(port: port, body: chatJSON("hi"))
                let chunks = stream.arrivals.filter { $0.type == "text_chunk" }
                #expect(chunks.count == 2)
                // Causality: the first chunk arrived before the upstream sent the second; buffered delivery would
                // have handed both over together, after the pause.
                let secondSent = try #require(mock.sent.dropFirst(3).first)
                #expect(chunks[0].at < secondSent)
            }
        }
    }

    @Test("keepalive comments flow while the upstream is silent, and stop with the stream")
    func keepalive() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([.pause(.milliseconds(450))] + SSE.textAnswer(["late"])))
            try await withServer(mock, keepalive: .milliseconds(100)) { port in
                let stream = try await streamChat(port: port, body: chatJSON("hi"))
                let firstText = try #require(stream.arrivals.first { $0.type == "text_chunk" }).at
                #expect(stream.keepalives.contains { $0 < firstText })
                let end = try #require(stream.arrivals.last)
                #expect(end.type == "complete")
                #expect(stream.keepalives.allSatisfy { $0 <= end.at })
            }
        }
    }

    @Test("keepalives go only where the stream is idle: none while events flow faster than the interval")
    func keepaliveOnlyWhenIdle() async throws {
        try await MockAnthropic.run { mock in
            // Silent 1.1 s, then 30 deltas 20 ms apart (longer than the interval), then silent 900 ms before the end.
            let busy = (0..<30).flatMap { [SSE.text(0, "w\($0) "), MockAnthropic.Piece.pause(.milliseconds(20))] }
            mock.enqueue(.stream([.pause(.milliseconds(1_100)), SSE.messageStart(), SSE.textStart(0)] + busy
                                 + [.pause(.milliseconds(900)), SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]))
            try await withServer(mock, keepalive: .milliseconds(400)) { port in
                let stream = try await streamChat(port: port, body: chatJSON("hi"))
                let chunks = stream.arrivals.filter { $0.type == "text_chunk" }
                #expect(chunks.count == 30)
                let (first, last) = (try #require(chunks.first).at, try #require(chunks.last).at)
                let end = try #require(stream.arrivals.last)
                // One interval after the last event, then one per interval: two in 1.1 s of silence (a timer that
                // restarted its interval at each check instead would send one).
                #expect(stream.keepalives.filter { $0 < first }.count >= 2, "the silence before the first token is kept open")
                #expect(!stream.keepalives.contains { $0 > first && $0 < last }, "no keepalive while events flow")
                #expect(stream.keepalives.contains { $0 > last && $0 < end.at }, "the silence after them is kept open")
            }
        }
    }

    @Test("a model call's overall deadline fires while the upstream is silent: error event overall_timeout, upstream closed")
    func overallDeadlineWhileSilent() async throws {
        try await MockAnthropic.run { mock in
            // The model starts, then goes silent (no pings) for far longer than the call may take, but less than idle.
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Thinking"), .pause(.seconds(20)),
                                  SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]))
            var config = streamingConfiguration(mock)
            config.anthropic?.timeouts.overall = .milliseconds(600)
            config.anthropic?.timeouts.idle = .seconds(60)
            let app = try await buildApplication(configuration: config)
            try await app.test(.live) { client in
                let started = ContinuousClock.now
                let stream = try await streamChat(port: try #require(client.port), body: chatJSON("hi"))
                #expect(stream.types == ["session_start", "iteration_start", "text_chunk", "error"], "\(stream.types)")
                let error = try #require(stream.arrivals.last)
                #expect(error.json["code"] as? String == "overall_timeout")
                #expect(error.json["retryable"] as? Bool == true)
                #expect(error.at - started >= .milliseconds(600), "not before the deadline")
                #expect(error.at - started < .seconds(10), "long before the silence ends")
                #expect(await eventually(within: .seconds(5)) { !mock.disconnects.isEmpty }, "the upstream request is closed")
            }
        }
    }

    @Test("a mid-stream upstream error becomes an error event and ends the stream")
    func midStreamError() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Part"), SSE.error("overloaded_error", "Overloaded")]))
            try await withServer(mock) { port in
                let stream = try await streamChat(port: port, body: chatJSON("hi"))
                #expect(stream.types == ["session_start", "iteration_start", "text_chunk", "error"])
                let error = try #require(stream.events("error").first)
                #expect(error["code"] as? String == "overloaded")
                #expect(error["retryable"] as? Bool == true)
            }
        }
    }

    @Test("upstream refusals become error events without the API key")
    func authError() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.status(401, body: SSE.errorBody("authentication_error", "invalid x-api-key")))
            try await withServer(mock) { port in
                let stream = try await streamChat(port: port, body: chatJSON("hi"))
                let error = try #require(stream.events("error").first)
                #expect(error["code"] as? String == "upstream_auth")
                #expect(error["retryable"] as? Bool == false)
                let everything = stream.arrivals.map { "\($0.json)" }.joined()
                #expect(!everything.contains(AnthropicConfigurationForTests.apiKey))
            }
        }
    }

    @Test("bad input is refused before the stream opens")
    func badInput() async throws {
        try await MockAnthropic.run { mock in
            try await withServer(mock) { port in
                let stream = try await streamChat(port: port, body: #"{"messages":[{"role":"user","content":"x"}],"maxTokens":-1}"#)
                #expect(stream.status == 400)
                #expect(mock.received.isEmpty)
            }
        }
    }

    @Test("without an API key the stream answers 503 naming the variable, and analysis still works")
    func notConfigured() async throws {
        let app = try await buildApplication(configuration: configuration(rules: nil))
        try await app.test(.router) { client in
            try await client.execute(uri: "/mcp/chat/stream", method: .post, headers: jsonHeaders, body: ByteBuffer(string: chatJSON("hi"))) { response in
                #expect(response.status == .serviceUnavailable)
                let error = try #require(try json(response.body)["error"] as? [String: Any])
                #expect(error["code"] as? String == "not_configured")
                #expect((error["message"] as? String)?.contains("ANTHROPIC_API_KEY") == true)
            }
            try await client.execute(uri: "/mcp/chat/analyze", method: .post, headers: jsonHeaders, body: ByteBuffer(string: chatJSON("hi"))) { response in
                #expect(response.status == .ok)
            }
        }
    }
}

@Suite("PostgreSQL behind the server", .timeLimit(.minutes(1)),
       .enabled(if: ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_POSTGRES_URL"] != nil))
struct PostgresServerTests {
    @Test("with SWITCHBOARD_DATABASE set to a PostgreSQL URL, the tools run on it")
    func toolsOnPostgres() async throws {
        let url = ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_POSTGRES_URL"]!
            .replacingOccurrences(of: "/switchboard_test?", with: "/switchboard_test_server?")
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.toolTurn(text: nil, tools: [(id: "t1", name: "get_departments", fragments: ["{}"])])),
                         .stream(SSE.textAnswer(["Eight departments."])))
            // A fresh schema each run, so the server migrates and seeds it.
            let reset = try PostgresDatabase(url: url)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await reset.run() }
                try await reset.transaction(["stream_records", "salary_increments", "employees", "locations", "departments",
                                             "schema_migrations"]
                    .map { ("DROP TABLE IF EXISTS \($0)", []) })
                group.cancelAll()
            }
            var config = streamingConfiguration(mock)
            config.database = .postgres(url: url)
            let app = try await buildApplication(configuration: config)
            try await app.test(.live) { client in
                let port = try #require(client.port)
                try await client.execute(uri: "/tools", method: .get) { response in
                    let names = (try json(response.body)["tools"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
                    #expect(names?.contains("get_departments") == true)
                }
                // The instance says when its database is migrated and seeded, as a load balancer asks it.
                #expect(await eventually(within: .seconds(30), every: .milliseconds(100)) { (try? await client.execute(uri: "/ready", method: .get) { $0.status }) == .ok })
                let stream = try await streamChat(port: port, body: chatJSON("how many departments?"))
                #expect(stream.events("tool_progress").last?["status"] as? String == "completed")
                let messages = try #require(mock.received.last?.body["messages"] as? [[String: Any]])
                let content = try #require((messages.last?["content"] as? [[String: Any]])?.first?["content"] as? String)
                #expect(content.contains("\"headCount\""))
                #expect(content.contains("Engineering"))
            }
        }
    }
}

@Suite("accumulated opt-out", .serialized, .timeLimit(.minutes(1)))
struct AccumulatedOptOutTests {
    @Test("\"accumulated\": false drops it from text_chunk, over the wire")
    func optOut() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["Hello", " world"])), .stream(SSE.textAnswer(["Hello", " world"])))
            let app = try await buildApplication(configuration: streamingConfiguration(mock))
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let lean = try await streamChat(port: port, body: chatJSON("hi", extra: #","accumulated":false"#))
                let full = try await streamChat(port: port, body: chatJSON("hi"))
                #expect(lean.events("text_chunk").map { $0["chunk"] as? String } == ["Hello", " world"])
                #expect(lean.events("text_chunk").allSatisfy { $0["accumulated"] == nil })
                #expect(full.events("text_chunk").map { $0["accumulated"] as? String } == ["Hello", "Hello world"])
            }
        }
    }
}
