import AnthropicMock
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestSupport
import Testing

/// Tracing, end to end: the `switchboard serve` binary configured only by the standard `OTEL_*` variables,
/// exporting OTLP/HTTP to a real receiver (`opentelemetry-proto`'s classes decode what it gets), a mock Anthropic
/// upstream that keeps the headers it was sent.
@Suite("OpenTelemetry traces", .enabled(if: OTLPReceiver.available), .timeLimit(.minutes(3)), .cpuQuiet)
struct TracingTests {
    /// A caller's trace: the chat's spans must join it.
    static let callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let callerSpan = "00f067aa0ba902b7"

    @Test("a tool chat is one trace: the server span joined to the caller's traceparent, analysis, admission, two model calls with the GenAI attributes, the tool; the upstream gets each call's traceparent; session_start, the header and the JSON log name the trace; /metrics has the GenAI histograms")
    func toolChatTrace() async throws {
        let receiver = try OTLPReceiver()
        defer { receiver.stop() }
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.toolTurn(text: "Looking.", tools: [(id: "toolu_trace1", name: "get_departments", fragments: ["{}"])])),
                         .stream(SSE.textAnswer(["There are ", "four departments."])))
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let server = try ServerProcess(directory: directory, arguments: ["--log-format", "json"], environment: [
                "ANTHROPIC_API_KEY": "sk-ant-trace-test", "ANTHROPIC_BASE_URL": mock.baseURL,
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "switchboard-test",
            ])
            defer { server.stop() }

            // A key in the query and the caller's vendors' tracestate: neither may leave for the backend or the provider.
            let (head, body) = try await postChat(port: server.port, path: "/mcp/chat/stream?api_key=sk-query-SECRET&x=1",
                                                  headers: ["traceparent": "00-\(Self.callerTrace)-\(Self.callerSpan)-01",
                                                            "tracestate": "vendor=tracestate-SECRET"])
            #expect(head.statusCode == 200)
            #expect(head.value(forHTTPHeaderField: "X-Switchboard-Trace-Id") == Self.callerTrace)
            let events = sseData(body)
            #expect(events.first?["type"] as? String == "session_start")
            #expect(events.first?["traceId"] as? String == Self.callerTrace, "\(body)")
            #expect(events.last?["type"] as? String == "complete", "\(body)")

            let spans = try await receiver.trace(Self.callerTrace) { spans in
                spans.contains { $0["kind"] as? String == "server" } && spans.filter { ($0["name"] as? String)?.hasPrefix("chat ") == true }.count >= 2
            }
            let names = spans.map { $0["name"] as? String ?? "" }
            let root = try #require(spans.first { $0["kind"] as? String == "server" }, "\(names)")
            #expect(root["name"] as? String == "/mcp/chat/stream")
            #expect(root["parentSpanId"] as? String == Self.callerSpan, "the caller's traceparent is honoured")
            #expect((root["resource"] as? [String: Any])?["service.name"] as? String == "switchboard-test", "OTEL_SERVICE_NAME")
            let serverId = try #require(root["spanId"] as? String)
            let rootAttributes = root["attributes"] as? [String: Any] ?? [:]
            #expect(rootAttributes["url.query"] as? String == "api_key=REDACTED&x=REDACTED", "\(rootAttributes)")
            #expect(rootAttributes["http.response.status_code"] as? Int == 200)
            #expect(!"\(spans)".contains("SECRET"), "nothing of the query's values or the tracestate in any span")
            // One tree: every span but the server's has its parent in the trace.
            let ids = Set(spans.compactMap { $0["spanId"] as? String })
            for span in spans where span["kind"] as? String != "server" {
                #expect(ids.contains(span["parentSpanId"] as? String ?? ""), "\(span["name"] ?? "") has no parent in the trace")
            }
            func attributes(_ span: [String: Any]) -> [String: Any] { span["attributes"] as? [String: Any] ?? [:] }

            let analysis = try #require(spans.first { $0["name"] as? String == "switchboard.analysis" }, "\(names)")
            #expect(analysis["parentSpanId"] as? String == serverId)
            #expect(attributes(analysis)["switchboard.level"] as? String != nil)
            #expect((attributes(analysis)["switchboard.rules_version"] as? String)?.hasPrefix("sha256:") == true)
            let admission = try #require(spans.first { $0["name"] as? String == "switchboard.admission" }, "\(names)")
            #expect(attributes(admission)["switchboard.admission.outcome"] as? String == "admitted")

            let calls = spans.filter { ($0["name"] as? String)?.hasPrefix("chat ") == true }
                .sorted { ($0["start"] as? Int ?? 0) < ($1["start"] as? Int ?? 0) }
            #expect(calls.count == 2, "\(names)")
            for (call, reason) in zip(calls, ["tool_use", "end_turn"]) {
                let a = attributes(call)
                #expect(call["kind"] as? String == "client")
                #expect(call["name"] as? String == "chat claude-sonnet-4-5")
                #expect(call["parentSpanId"] as? String == serverId)
                #expect(a["gen_ai.operation.name"] as? String == "chat")
                #expect(a["gen_ai.provider.name"] as? String == "anthropic")
                #expect(a["gen_ai.request.model"] as? String == "claude-sonnet-4-5")
                #expect(a["gen_ai.response.model"] as? String == "claude-sonnet-4-5")
                #expect(a["gen_ai.request.max_tokens"] as? Int == 4096)
                #expect(a["gen_ai.usage.input_tokens"] as? Int == 25)
                #expect(a["gen_ai.usage.output_tokens"] as? Int == 15)
                #expect(a["gen_ai.response.finish_reasons"] as? [String] == [reason])
                #expect((a["gen_ai.response.time_to_first_chunk"] as? Double ?? 0) > 0)
                #expect(a["gen_ai.input.messages"] == nil, "no message content without the opt-in")
            }
            let tool = try #require(spans.first { $0["name"] as? String == "execute_tool get_departments" }, "\(names)")
            #expect(tool["parentSpanId"] as? String == serverId)
            #expect(attributes(tool)["gen_ai.operation.name"] as? String == "execute_tool")
            #expect(attributes(tool)["gen_ai.tool.name"] as? String == "get_departments")
            #expect(attributes(tool)["gen_ai.tool.call.id"] as? String == "toolu_trace1")
            #expect(attributes(tool)["gen_ai.tool.call.arguments"] == nil)
            // The tool ran between the two calls.
            #expect((tool["start"] as? Int ?? 0) >= (calls.first?["end"] as? Int ?? .max))
            #expect((tool["end"] as? Int ?? .max) <= (calls.last?["start"] as? Int ?? 0))

            // Each model request carried its own span's traceparent.
            let sent = mock.received.map { $0.headers["traceparent"] ?? "" }
            #expect(sent == calls.map { "00-\(Self.callerTrace)-\($0["spanId"] as? String ?? "")-01" }, "\(sent)")
            #expect(mock.received.allSatisfy { $0.headers["tracestate"] == nil }, "the caller's tracestate stays here")

            // The log line of the stream's end names the trace and the server span.
            let log = try String(contentsOf: server.logURL, encoding: .utf8)
            let finished = log.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .first { $0["message"] as? String == "stream finished" }
            let metadata = try #require(finished?["metadata"] as? [String: Any], "\(log)")
            #expect(metadata["trace_id"] as? String == Self.callerTrace)
            #expect(metadata["span_id"] as? String == serverId)
            #expect(finished?["level"] as? String == "info")

            // The GenAI client metrics.
            let metrics = try await getText(port: server.port, path: "/metrics")
            let labels = #"gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet-4-5",route="none""#
            #expect(metrics.contains("gen_ai_client_operation_duration_seconds_count{\(labels),error_type=\"\"} 2"), "\(metrics)")
            #expect(metrics.contains("gen_ai_client_operation_time_to_first_chunk_seconds_count{\(labels)} 2"))
            #expect(metrics.contains("gen_ai_client_token_usage_sum{\(labels),gen_ai_token_type=\"output\"} 30"))
            #expect(metrics.contains("gen_ai_client_token_usage_sum{\(labels),gen_ai_token_type=\"input\"} 50"))
        }
    }

    @Test("with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true the spans carry the messages, the tool's arguments and result; a chat without a traceparent starts its own trace")
    func contentCapture() async throws {
        let receiver = try OTLPReceiver()
        defer { receiver.stop() }
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.toolTurn(text: nil, tools: [(id: "toolu_c", name: "get_departments", fragments: ["{}"])])),
                         .stream(SSE.textAnswer(["Done."])))
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let server = try ServerProcess(directory: directory, arguments: [], environment: [
                "ANTHROPIC_API_KEY": "sk-ant-trace-test", "ANTHROPIC_BASE_URL": mock.baseURL,
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint + "/v1/traces", "OTEL_BSP_SCHEDULE_DELAY": "100",
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
            ])
            defer { server.stop() }
            let (head, _) = try await postChat(port: server.port, headers: [:])
            let traceId = try #require(head.value(forHTTPHeaderField: "X-Switchboard-Trace-Id"))
            #expect(traceId.count == 32 && traceId != Self.callerTrace)
            let spans = try await receiver.trace(traceId) { spans in
                spans.filter { ($0["name"] as? String)?.hasPrefix("chat ") == true }.count >= 2
            }
            let root = try #require(spans.first { $0["kind"] as? String == "server" })
            #expect(root["parentSpanId"] as? String == "", "a new trace's root")
            let first = try #require(spans.filter { ($0["name"] as? String)?.hasPrefix("chat ") == true }
                .min { ($0["start"] as? Int ?? 0) < ($1["start"] as? Int ?? 0) })
            let attributes = first["attributes"] as? [String: Any] ?? [:]
            #expect((attributes["gen_ai.input.messages"] as? String)?.contains("list the departments") == true, "\(attributes)")
            #expect((attributes["gen_ai.output.messages"] as? String)?.contains("\"tool_call\"") == true, "\(attributes)")
            let tool = try #require(spans.first { $0["name"] as? String == "execute_tool get_departments" })
            let toolAttributes = tool["attributes"] as? [String: Any] ?? [:]
            #expect(toolAttributes["gen_ai.tool.call.arguments"] as? String == "{}")
            #expect((toolAttributes["gen_ai.tool.call.result"] as? String)?.contains("Engineering") == true, "\(toolAttributes)")
        }
    }

    @Test("a retried model call is one chat span per attempt: the refused one with its error type and an error status, the next with its resend count")
    func retriedCall() async throws {
        let receiver = try OTLPReceiver()
        defer { receiver.stop() }
        try await MockAnthropic.run { mock in
            mock.enqueue(.status(529, body: SSE.errorBody("overloaded_error", "Overloaded")), .stream(SSE.textAnswer(["Fine."])))
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let traceId = try await tracedChat(in: directory, mock: mock, receiver: receiver)
            let spans = try await receiver.trace(traceId) { spans in
                spans.filter { ($0["name"] as? String)?.hasPrefix("chat ") == true }.count >= 2
            }
            let attempts = spans.filter { ($0["name"] as? String)?.hasPrefix("chat ") == true }
                .sorted { ($0["start"] as? Int ?? 0) < ($1["start"] as? Int ?? 0) }
            #expect(attempts.count == 2)
            let first = attempts.first?["attributes"] as? [String: Any] ?? [:]
            let second = attempts.last?["attributes"] as? [String: Any] ?? [:]
            #expect(first["error.type"] as? String == "overloaded")
            #expect(attempts.first?["status"] as? Int == 2, "STATUS_CODE_ERROR")
            #expect(first["http.request.resend_count"] == nil)
            #expect(second["error.type"] == nil)
            #expect(second["http.request.resend_count"] as? Int == 1)
            #expect(second["gen_ai.response.finish_reasons"] as? [String] == ["end_turn"])
            // Each attempt sent its own span as the parent.
            #expect(mock.received.map { $0.headers["traceparent"] ?? "" }
                == attempts.map { "00-\(traceId)-\($0["spanId"] as? String ?? "")-01" })
        }
    }

    @Test("a route's fallback is its own chat span: the refused call on the route's model with its error type, then the call on the fallback's model")
    func fallbackCall() async throws {
        let receiver = try OTLPReceiver()
        defer { receiver.stop() }
        try await MockAnthropic.run { mock in
            mock.enqueue(.status(529, body: SSE.errorBody("overloaded_error", "Overloaded")), .stream(SSE.textAnswer(["From the fallback."])))
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            try Data("""
                version: 1
                levels:
                  - { name: any, route: main, estimated_seconds: 5 }
                routes:
                  main: { action: stream, model: claude-sonnet-4-5, fallbacks: [{ model: claude-haiku-4-5 }] }
                rules:
                  - { id: r, weight: 1, when: { any_keywords: [departments] } }

                """.utf8).write(to: directory.appendingPathComponent("rules.yaml"))
            let server = try ServerProcess(directory: directory, arguments: ["--rules", "rules.yaml"], environment: [
                "ANTHROPIC_API_KEY": "sk-ant-trace-test", "ANTHROPIC_BASE_URL": mock.baseURL,
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
            ])
            defer { server.stop() }
            let (head, body) = try await postChat(port: server.port, path: "/mcp/chat", headers: [:])
            #expect(sseData(body).last?["type"] as? String == "complete", "\(body)")
            let traceId = try #require(head.value(forHTTPHeaderField: "X-Switchboard-Trace-Id"))
            let spans = try await receiver.trace(traceId) { spans in
                spans.filter { ($0["name"] as? String)?.hasPrefix("chat ") == true }.count >= 2
            }
            let calls = spans.filter { ($0["name"] as? String)?.hasPrefix("chat ") == true }
                .sorted { ($0["start"] as? Int ?? 0) < ($1["start"] as? Int ?? 0) }
            #expect(calls.map { $0["name"] as? String } == ["chat claude-sonnet-4-5", "chat claude-haiku-4-5"])
            #expect((calls.first?["attributes"] as? [String: Any])?["error.type"] as? String == "overloaded")
            #expect((calls.last?["attributes"] as? [String: Any])?["error.type"] == nil)
            #expect((calls.last?["attributes"] as? [String: Any])?["gen_ai.request.model"] as? String == "claude-haiku-4-5")
        }
    }

    @Test("an MCP tool over HTTP: its call is a client span under the tool's span, and the MCP server receives that span's traceparent",
          .enabled(if: FastMCP.available))
    func mcpOverHTTP() async throws {
        let receiver = try OTLPReceiver()
        defer { receiver.stop() }
        let python = try PythonHTTPServer(mode: "http")
        defer { python.stop() }
        #expect(await python.ready())
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.toolTurn(text: nil, tools: [(id: "toolu_mcp", name: "traceparent", fragments: ["{}"])])),
                         .stream(SSE.textAnswer(["Seen."])))
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let config = directory.appendingPathComponent("mcp.json")
            try Data(#"{"mcpServers": {"python": {"url": "\#(python.url)"}}}"#.utf8).write(to: config)
            let traceId = try await tracedChat(in: directory, arguments: ["--mcp-config", config.path], mock: mock, receiver: receiver)
            let spans = try await receiver.trace(traceId) { spans in
                spans.contains { $0["name"] as? String == "tools/call traceparent" } && spans.contains { $0["kind"] as? String == "server" }
            }
            let tool = try #require(spans.first { $0["name"] as? String == "execute_tool traceparent" }, "\(spans.map { $0["name"] ?? "" })")
            let call = try #require(spans.first { $0["name"] as? String == "tools/call traceparent" })
            #expect(call["kind"] as? String == "client")
            #expect(call["parentSpanId"] as? String == tool["spanId"] as? String)
            #expect((call["attributes"] as? [String: Any])?["mcp.method.name"] as? String == "tools/call")
            // What the MCP server saw came back to the model as the tool's result.
            let results = (mock.received.last?.body["messages"] as? [[String: Any]])?.last?["content"] as? [[String: Any]]
            let seen = results?.first?["content"] as? String ?? ""
            #expect(seen.contains("00-\(traceId)-\(call["spanId"] as? String ?? "")-01"), "\(seen)")
        }
    }

    @Test("a dead or slow collector costs a chat nothing: chats take as long as with tracing off, and the lost spans are counted")
    func collectorDown() async throws {
        let slow = try OTLPReceiver(delay: .seconds(3))
        defer { slow.stop() }
        try await MockAnthropic.run { mock in
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let base = ["ANTHROPIC_API_KEY": "sk-ant-trace-test", "ANTHROPIC_BASE_URL": mock.baseURL]
            let collectors = [
                ("off", [String: String]()),
                ("dead", ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(freeLoopbackPort())"]),
                ("slow", ["OTEL_EXPORTER_OTLP_ENDPOINT": slow.endpoint]),
            ]
            var timings: [String: Duration] = [:]
            for (name, variables) in collectors {
                let folder = directory.appendingPathComponent(name)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                let server = try ServerProcess(directory: folder, arguments: [], environment: base.merging(variables) { $1 }.merging([
                    "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_EXPORTER_OTLP_TIMEOUT": "500",
                ]) { $1 })
                defer { server.stop() }
                _ = try await getText(port: server.port, path: "/ready")
                let clock = ContinuousClock()
                var slowest = Duration.zero
                for _ in 0..<6 {
                    mock.enqueue(.stream(SSE.textAnswer(["Hello ", "there."])))
                    let started = clock.now
                    let (head, body) = try await postChat(port: server.port, headers: [:])
                    slowest = max(slowest, clock.now - started)
                    #expect(head.statusCode == 200)
                    #expect(sseData(body).last?["type"] as? String == "complete", "\(name): \(body)")
                    // Exports happen between chats too.
                    try await Task.sleep(for: .milliseconds(60))
                }
                timings[name] = slowest
                if name != "off" {
                    // The exporter's failures (refused, or past OTEL_EXPORTER_OTLP_TIMEOUT) are counted, not felt.
                    var dropped = 0.0
                    let deadline = clock.now + .seconds(10)
                    while dropped == 0, clock.now < deadline {
                        let metrics = try await getText(port: server.port, path: "/metrics")
                        dropped = metrics.split(separator: "\n").first { $0.hasPrefix("switchboard_trace_spans_dropped_total ") }
                            .flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
                        if dropped == 0 { try await Task.sleep(for: .milliseconds(200)) }
                    }
                    #expect(dropped > 0, "\(name): no dropped spans counted")
                }
            }
            // An export waited for would cost at least its 500 ms timeout (the slow collector answers after 3 s).
            let off = try #require(timings["off"])
            for name in ["dead", "slow"] {
                let traced = try #require(timings[name])
                #expect(traced < off + .milliseconds(400), "\(name): slowest chat \(traced) against \(off) with tracing off")
            }
        }
    }

    // MARK: Helpers

    /// One chat on a `serve` process tracing into `receiver` (exports every 100 ms), ended with `complete`; its trace id.
    func tracedChat(in directory: URL, arguments: [String] = [], mock: MockAnthropic, receiver: OTLPReceiver) async throws -> String {
        let server = try ServerProcess(directory: directory, arguments: arguments, environment: [
            "ANTHROPIC_API_KEY": "sk-ant-trace-test", "ANTHROPIC_BASE_URL": mock.baseURL,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
        ])
        defer { server.stop() }
        let (head, body) = try await postChat(port: server.port, headers: [:])
        #expect(sseData(body).last?["type"] as? String == "complete", "\(body)")
        return try #require(head.value(forHTTPHeaderField: "X-Switchboard-Trace-Id"))
    }

    /// `POST /mcp/chat/stream` with one user message, read to its end.
    func postChat(port: Int, path: String = "/mcp/chat/stream", headers: [String: String]) async throws -> (HTTPURLResponse, String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = Data(#"{"messages":[{"role":"user","content":"list the departments"}],"accumulated":false}"#.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        return (try #require(response as? HTTPURLResponse), String(decoding: data, as: UTF8.self))
    }

    func getText(port: Int, path: String) async throws -> String {
        let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        return String(decoding: data, as: UTF8.self)
    }

    /// The `data:` objects of an SSE body.
    func sseData(_ body: String) -> [[String: Any]] {
        body.split(separator: "\n").filter { $0.hasPrefix("data: ") }
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.dropFirst(6).utf8)) as? [String: Any] }
    }
}
