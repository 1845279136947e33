import AnthropicMock
import AsyncHTTPClient
import ChatCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TestSupport
import Yams
@testable import Server

private let playgroundRules = """
    version: 1
    levels:
      - { name: simple, max_score: 3, route: fast, estimated_seconds: 4 }
      - { name: complex, route: desktop, estimated_seconds: 30 }
    routes:
      fast: { action: stream, model: claude-haiku-4-5 }
      desktop: { action: advise, message: "Use the desktop client." }
    rules:
      - { id: people, weight: 1, description: "asks about employees", when: { any_keywords: [employees] } }
      - { id: increments, weight: 1, description: "a percentage range", when: { regex: '\\d+-\\d+%' } }
    """

@Suite("The frontend kit", .serialized, .timeLimit(.minutes(2)))
struct PlaygroundTests {
    @Test("GET / and GET /client.js answer without a key, with their types and a strict content security policy")
    func assets() async throws {
        var config = configuration(rules: nil)
        config.apiKeys = ["sb_playground-test-key-0123456789abcdef"]
        let app = try await buildApplication(configuration: config)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            for (path, type, needle) in [("/", "text/html", "<title>Switchboard playground</title>"),
                                         ("/client.js", "text/javascript", "export class Switchboard"),
                                         ("/playground.js", "text/javascript", "from \"./client.js\"")] {
                let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"),
                                                                   timeout: .seconds(10))
                #expect(response.status == .ok, "\(path)")
                #expect(response.headers.first(name: "content-type")?.hasPrefix(type) == true, "\(path)")
                #expect(response.headers.first(name: "content-security-policy")?.contains("script-src 'self'") == true)
                #expect(response.headers.first(name: "x-content-type-options") == "nosniff")
                #expect(String(buffer: try await response.body.collect(upTo: 1 << 20)).contains(needle), "\(path)")
            }
            // The API itself still needs the key.
            let tools = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/tools"), timeout: .seconds(10))
            #expect(tools.status == .unauthorized)
        }
    }

    @Test("the client's SSE parser: CRLF, CR and LF, chunks split anywhere (inside CRLF and inside a character), comments, multi-line data",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/node")))
    func parser() async throws {
        let client = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/Server/Frontend/client.js").standardized.path
        let script = """
            const { SSEParser } = await import(process.argv[1]);
            const stream = 'id: 1\\r\\ndata: {"type":"a","text":"São 😀"}\\r\\n\\r\\n: keepalive\\n\\nid: 2\\rdata: line one\\rdata: line two\\r\\r'
              + 'event: custom\\ndata:no-space\\n\\ndata: unfinished';
            const bytes = new TextEncoder().encode(stream);
            const whole = new SSEParser().push(bytes);
            for (let size = 1; size <= 7; size++) {
              const parser = new SSEParser(); const got = [];
              for (let i = 0; i < bytes.length; i += size) got.push(...parser.push(bytes.slice(i, i + size)));
              if (JSON.stringify(got) !== JSON.stringify(whole)) { console.log('chunks of ' + size + ': ' + JSON.stringify(got)); process.exit(1); }
            }
            console.log(JSON.stringify(whole));
            """
        let result = try await runProcessAsync(URL(fileURLWithPath: "/usr/bin/node"), ["--input-type=module", "-e", script, client])
        #expect(result.status == 0, "\(result.stdoutText)\(result.stderrText)")
        let events = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [[String: Any]])
        #expect(events.count == 4, "\(events)")
        #expect(events[0]["data"] as? String == #"{"type":"a","text":"São 😀"}"#)
        #expect(events[0]["id"] as? String == "1")
        #expect(events[1]["comment"] as? String == "keepalive")
        #expect(events[2]["data"] as? String == "line one\nline two")
        #expect(events[2]["id"] as? String == "2")
        #expect(events[3]["event"] as? String == "custom")
        #expect(events[3]["data"] as? String == "no-space")
    }

    @Test("in a real browser: the API key asked for and kept in memory only, the spans highlighted, the timeline in order with the pauses it really had, the answer, the totals, the finished chat rated down for the review, and a cancel that stops the upstream, a dropped connection picked up again",
          .enabled(if: Browser.available))
    func browser() async throws {
        try await MockAnthropic.run { mock in
            let rules = try TemporaryRules(playgroundRules)
            defer { rules.remove() }
            var config = streamingConfiguration(mock)
            config.rulesPath = rules.path
            let key = "sb_playground-browser-key-0123456789abcdef"
            config.apiKeys = [key]
            let app = try await buildApplication(configuration: config)
            mock.enqueue(
                .stream([SSE.messageStart(), SSE.toolStart(0, id: "toolu_1", name: "get_employees"),
                         SSE.inputJSON(0, #"{"min_increment_pct":5,"max_increment_pct":10,"limit":3}"#), SSE.stop(0),
                         SSE.messageDelta("tool_use"), SSE.messageStop]),
                .stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Found "), .pause(.milliseconds(300)),
                         SSE.text(0, "the people"), .pause(.milliseconds(300)), SSE.text(0, " you asked for."), SSE.stop(0),
                         SSE.messageDelta("end_turn"), SSE.messageStop]),
                .stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Working"), .pause(.seconds(30)), SSE.text(0, " on it"),
                         SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]),
                .stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Alpha "), .pause(.milliseconds(500)), SSE.text(0, "beta "),
                         .pause(.milliseconds(500)), SSE.text(0, "gamma."), SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]))
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Browser/playground_check.py").path
                var arguments = [script, "--url", "http://127.0.0.1:\(port)/", "--query", "list the employees with a 5-10% increment",
                                 "--api-key", key]
                if let path = ProcessInfo.processInfo.environment["SWITCHBOARD_PLAYGROUND_SCREENSHOT"] { arguments += ["--screenshot", path] }
                let result = try await runProcessAsync(URL(fileURLWithPath: "/usr/bin/env"), ["python3"] + arguments)
                #expect(result.status == 0, "\(result.stdoutText)\(result.stderrText)")
                let seen = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any], "\(result.stderrText)")

                // The key: asked for on the first 401, a wrong one said so, the right one kept in the tab's memory only.
                let prompt = try #require(seen["keyPrompt"] as? [String: Any])
                #expect(prompt["asked"] as? String == "enter an API key, then send again")
                #expect(prompt["refused"] as? String == "that key was refused")
                #expect(prompt["focused"] as? Bool == true)
                let stored = try #require(seen["stored"] as? [String: Any])
                #expect(stored["local"] as? Int == 0 && stored["session"] as? Int == 0 && stored["cookie"] as? String == "")
                #expect((stored["url"] as? String)?.contains(key) == false)

                let marks = try #require(seen["marks"] as? [[String: Any]])
                #expect(marks.map { $0["text"] as? String } == ["employees", "5-10%"])
                #expect(marks.map { $0["rule"] as? String } == ["people", "increments"])
                #expect((marks.first?["title"] as? String)?.contains("asks about employees") == true)
                let analysis = try #require(seen["analysis"] as? [String: String])
                #expect(analysis["level"] == "simple")
                #expect(analysis["route"] == "fast")
                #expect(analysis["model"] == "anthropic/claude-haiku-4-5")

                let rows = try #require(seen["rows"] as? [[String: Any]])
                #expect(rows.map { $0["type"] as? String } == [
                    "session_start", "routing", "iteration_start", "tool_detected", "tools_executing", "tool_progress",
                    "tool_progress", "iteration_start", "text_chunk", "text_chunk", "text_chunk", "complete",
                ])
                #expect(rows.map { $0["id"] as? String } == (1...12).map(String.init), "every event once, in order")
                let times = rows.compactMap { $0["sinceStart"] as? Double }
                #expect(times == times.sorted(), "times since the start never go back")
                // The pauses the upstream made are the gaps the page saw: the chunks arrived as they were sent.
                let chunkGaps = rows.filter { $0["type"] as? String == "text_chunk" }.dropFirst().compactMap { $0["sincePrevious"] as? Double }
                // (Half the pause at least: a busy machine may render one chunk late, which shortens the gap after
                // it; chunks held back and delivered together would show gaps near zero.)
                #expect(chunkGaps.count == 2 && chunkGaps.allSatisfy { $0 >= 150 }, "\(chunkGaps)")
                let finished = try #require(rows.first { ($0["detail"] as? String)?.hasPrefix("get_employees completed in ") == true })
                #expect(finished["type"] as? String == "tool_progress")
                #expect(seen["answer"] as? String == "Found the people you asked for.")
                let totals = try #require(seen["totals"] as? [String: String])
                #expect(totals["events"] == "12")
                #expect(totals["tokens"] == "50 in, 30 out")

                // The cancel: the page stopped, the server closed the upstream request.
                let cancelled = try #require(seen["cancelledRows"] as? [String])
                #expect(cancelled.last == "text_chunk", "\(cancelled)")
                #expect(seen["cancelledAnswer"] as? String == "Working")
                #expect(seen["sendEnabled"] as? Bool == true)
                #expect(await eventually(within: .seconds(5)) { mock.disconnects.count == 1 })

                // The dropped connection: picked up again, every event once, the whole answer; the model never stopped.
                let resumedRows = try #require(seen["resumedRows"] as? [[String: String]])
                #expect(seen["resumedStatus"] as? String == "done")
                #expect(resumedRows.filter { $0["type"] == "resumed" }.count == 1, "\(resumedRows)")
                let ids = resumedRows.filter { $0["type"] != "resumed" }.compactMap { $0["id"].flatMap { Int($0) } }
                #expect(ids == Array(1...ids.count), "no event lost or repeated: \(ids)")
                #expect(resumedRows.last?["type"] == "complete")
                #expect(seen["resumedAnswer"] as? String == "Alpha beta gamma.")
                #expect(mock.disconnects.count == 1, "dropping the connection did not stop the model")

                // The first chat was rated down with the level it should have had: the review hears it.
                let feedback = try #require(seen["feedback"] as? [String: Any])
                #expect(feedback["shown"] as? Bool == true && feedback["status"] as? String == "thanks: the operator's review will hear it",
                        "\(feedback)")
                var review = HTTPClientRequest(url: "http://127.0.0.1:\(port)/rules/review")
                review.headers.add(name: "authorization", value: "Bearer \(key)")
                let answer = try json(try await HTTPClient.shared.execute(review, timeout: .seconds(10)).body.collect(upTo: 1 << 20))
                let flagged = answer["flagged"] as? [[String: Any]] ?? []
                #expect(flagged.contains { ($0["signals"] as? [String])?.contains("feedback") == true
                    && $0["suggestedLevel"] as? String == "complex" }, "\(answer)")
            }
        }
    }
}

extension PlaygroundTests {
    @Test("in a real browser, with both opt-ins ticked: the thinking shown dimmed above the answer, each tool's input and result under its row, collapsed until clicked",
          .enabled(if: Browser.available))
    func browserDetails() async throws {
        try await MockAnthropic.run { mock in
            let app = try await buildApplication(configuration: streamingConfiguration(mock))
            mock.enqueue(
                .stream([SSE.messageStart()] + SSE.thinking(0, thinking: "They want the departments.", signature: "s1")
                        + [SSE.toolStart(1, id: "toolu_b", name: "get_departments"), SSE.inputJSON(1, #"{}"#), SSE.stop(1),
                           SSE.messageDelta("tool_use"), SSE.messageStop]),
                .stream([SSE.messageStart()] + SSE.thinking(0, thinking: " Four of them.", signature: "s2")
                        + [SSE.textStart(1), SSE.text(1, "There are four departments."), SSE.stop(1), SSE.messageDelta("end_turn"),
                           SSE.messageStop]))
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                    .appendingPathComponent("Browser/playground_details_check.py").path
                let result = try await runProcessAsync(URL(fileURLWithPath: "/usr/bin/env"),
                                                       ["python3", script, "--url", "http://127.0.0.1:\(port)/", "--query", "list the departments"])
                #expect(result.status == 0, "\(result.stdoutText)\(result.stderrText)")
                let seen = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any], "\(result.stderrText)")
                #expect(seen["thinking"] as? String == "They want the departments. Four of them.")
                #expect(seen["answer"] as? String == "There are four departments.")
                #expect(seen["thinkingBeforeAnswer"] as? Bool == true)
                let style = try #require(seen["thinkingStyle"] as? [String: String])
                #expect(style["fontStyle"] == "italic")
                #expect(style["color"] != style["answerColor"], "dimmed: \(style)")
                #expect(Double(style["opacity"] ?? "1") ?? 1 < 1)
                let details = try #require(seen["details"] as? [[String: Any]])
                #expect(details.map { $0["summary"] as? String } == ["input", "result"])
                #expect(details.allSatisfy { $0["open"] as? Bool == false && $0["row"] as? String == "tool_progress" })
                #expect(details.allSatisfy { $0["visible"] as? Bool == false }, "collapsed: \(details)")
                #expect((details.first?["text"] as? String)?.trimmingCharacters(in: .whitespacesAndNewlines) == "{}")
                #expect((details.last?["text"] as? String)?.contains("Engineering") == true)
                #expect(seen["openedVisible"] as? Bool == true, "a click opens the card")
                #expect((seen["rows"] as? [String])?.filter { $0 == "thinking_chunk" }.count == 2)
            }
        }
    }
}

private let docsRules = playgroundRules + """

      - { id: desktop, weight: 5, description: "wants a spreadsheet", when: { any_keywords: [spreadsheet] } }
    """

extension PlaygroundTests {
    @Test("the examples in Docs/API.md run as written in a real browser: the preflight, the client, smart routing, both React hooks",
          .enabled(if: Browser.available && Browser.react))
    func docsExamples() async throws {
        try await MockAnthropic.run { mock in
            let rules = try TemporaryRules(docsRules)
            defer { rules.remove() }
            var config = streamingConfiguration(mock)
            config.rulesPath = rules.path
            let app = try await buildApplication(configuration: config)
            let waiting: [MockAnthropic.Piece] = [SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Waiting"), .pause(.seconds(30)),
                                                  SSE.text(0, " too long"), SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]
            mock.enqueue(
                .stream(SSE.textAnswer(["Hello", " from", " the client."])),                       // the client example
                .stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Working"), .pause(.seconds(30)), SSE.text(0, " late"),
                         SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]),              // the client's hook: replaced
                .stream(SSE.textAnswer(["Second", " answer."])),                                   // ... by this one
                .stream(SSE.toolTurn(text: nil, tools: [(id: "toolu_1", name: "get_employees",
                                                         fragments: [#"{"min_increment_pct":5,"max_increment_pct":10,"limit":3}"#])])),
                .stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Found"), .pause(.milliseconds(150)),
                         SSE.text(0, " them."), SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]),      // the reader's hook
                .stream(waiting),                                                                  // ... cancelled
                .stream(SSE.textAnswer(["Routed", " answer."])))                                   // smart routing with fetch
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                let result = try await runProcessAsync(URL(fileURLWithPath: "/usr/bin/env"), [
                    "python3", here.appendingPathComponent("Browser/docs_examples_check.py").path,
                    "--base", "http://127.0.0.1:\(port)", "--api-md", here.appendingPathComponent("../../Docs/API.md").standardized.path,
                ])
                #expect(result.status == 0, "\(result.stdoutText)\(result.stderrText.suffix(3_000)) (the model got \(mock.received.count) requests)")
                let seen = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any], "\(result.stderrText)")
                #expect(seen["examples"] as? Int == 5)

                // The preflight: a stream route opens the stream on the route's model, with every span highlighted where
                // it is; an advice route shows the advice.
                let analyze = try #require(seen["analyze"] as? [String: [String: Any]])
                let streamCalls = try #require(analyze["stream"]?["calls"] as? [[String: Any]])
                #expect(streamCalls.map { $0["name"] as? String } == ["openStream", "highlight", "highlight"])
                let opened = try #require((streamCalls.first?["args"] as? [[String: Any]])?.first)
                #expect(opened["model"] as? String == "claude-haiku-4-5")
                let query = "list the employees with a 5-10% increment" as NSString
                let spans = streamCalls.dropFirst().compactMap { $0["args"] as? [Any] }.map { args in
                    query.substring(with: NSRange(location: args[1] as! Int, length: (args[2] as! Int) - (args[1] as! Int)))
                }
                #expect(spans == ["employees", "5-10%"])
                #expect(streamCalls.dropFirst().compactMap { ($0["args"] as? [Any])?[3] as? String } == ["asks about employees", "a percentage range"])
                let adviseCalls = try #require(analyze["advise"]?["calls"] as? [[String: Any]])
                #expect(adviseCalls.first?["name"] as? String == "showAdvice")
                #expect((adviseCalls.first?["args"] as? [String])?.first == "Use the desktop client.")

                // The client: the preflight, every event to onEvent in order, the result.
                let clientRun = try #require(seen["client"] as? [String: Any])
                let done = try #require(clientRun["done"] as? [String: Any])
                #expect((done["advice"] as? [String: Any])?["route"] as? String == "fast")
                #expect(done["text"] as? String == "Hello from the client.")
                #expect(done["cancelled"] as? Bool == false)
                #expect(done["error"] is NSNull)
                #expect((done["complete"] as? [String: Any])?["stopReason"] as? String == "end_turn")
                let logged = (clientRun["logs"] as? [[Any]] ?? []).compactMap { $0.first as? String }
                #expect(logged == ["session_start", "routing", "iteration_start", "text_chunk", "text_chunk", "text_chunk", "complete"])

                // The client's React hook: a second send replaces the first (cancelled on the server), and the first's
                // end never shows over the second.
                let hook = try #require(seen["clientHook"] as? [String: Any])
                #expect((hook["first"] as? [String: Any])?["cancelled"] as? Bool == true)
                #expect((hook["second"] as? [String: Any])?["text"] as? String == "Second answer.")
                let state = try #require(hook["state"] as? [String: Any])
                #expect(state["status"] as? String == "done")
                #expect(state["text"] as? String == "Second answer.")
                #expect((state["events"] as? [String])?.last == "complete")
                #expect((state["events"] as? [String])?.filter { $0 == "session_start" }.count == 1)
                // The hook kept the conversation: what was sent, then the answer's turn (the cancelled chat added none).
                let history = try #require(state["history"] as? [[String: Any]], "\(state)")
                #expect(history.map { $0["role"] as? String } == ["user", "assistant"])
                #expect(history.first?["content"] as? String == "list the employees again")
                #expect(((history.last?["content"] as? [[String: Any]])?.first?["text"] as? String) == "Second answer.")
                let statuses = (hook["renders"] as? [[String: Any]] ?? []).compactMap { $0["status"] as? String }
                let afterSecond = statuses.split(separator: "streaming", omittingEmptySubsequences: false).last ?? []
                #expect(!afterSecond.contains("cancelled"), "\(statuses)")
                #expect(statuses.last == "done")

                // Smart routing with fetch: a stream for a stream route, the advice as JSON for an advice route.
                let routing = try #require(seen["routing"] as? [String: [[String: Any]]])
                let read = try #require((routing["stream"]?.first?["args"] as? [String])?.first)
                #expect(routing["stream"]?.first?["name"] as? String == "readEvents")
                #expect(read.contains(#""type":"routing""#) && read.contains(#""chunk":" answer.""#) && read.contains(#""type":"complete""#))
                #expect(routing["advise"]?.first?["name"] as? String == "showAdvice")
                #expect((routing["advise"]?.first?["args"] as? [String])?.first == "Use the desktop client.")

                // The fetch-and-reader hook: the text, the tool with its status and time; a cancel is not an error.
                let reader = try #require(seen["readerHook"] as? [String: Any])
                let finished = try #require(reader["finished"] as? [String: Any])
                #expect(finished["text"] as? String == "Found them.")
                #expect(finished["error"] is NSNull)
                let tool = try #require((finished["tools"] as? [String: [String: Any]])?["toolu_1"])
                #expect(tool["name"] as? String == "get_employees")
                #expect(tool["status"] as? String == "completed")
                #expect((tool["time"] as? String)?.hasSuffix("ms") == true, "\(tool)")
                #expect((reader["texts"] as? [String])?.contains("Found") == true, "the text grew as it came")
                let cancelled = try #require(reader["cancelled"] as? [String: Any])
                #expect(cancelled["text"] as? String == "Waiting")
                #expect(cancelled["error"] is NSNull)

                // Both cancels reached the model: its two long answers were hung up on.
                #expect(await eventually(within: .seconds(5)) { mock.disconnects.count == 2 })
                #expect(mock.received.count == 7)
            }
        }
    }
}

/// The repository's rules.yaml, as a candidate for the shadow report.
private let shippedRulesPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../rules.yaml")
    .standardized.path

@Suite("The OpenAPI description")
struct OpenAPITests {
    @Test("describes exactly the server's paths and methods, its error codes and its stream events; a wrong method is a 405 with Allow")
    func matchesServer() async throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Docs/openapi.yaml")
        let spec = try #require(try Yams.load(yaml: String(contentsOf: url, encoding: .utf8)) as? [String: Any])
        let paths = try #require(spec["paths"] as? [String: [String: Any]])
        let described = Dictionary(uniqueKeysWithValues: paths.map { ($0.key, Set($0.value.keys.map { $0.uppercased() })) })
        let served = MethodNotAllowedMiddleware<BasicRequestContext>.methods.mapValues { Set($0.map(\.rawValue)) }
        #expect(described == served)
        let components = try #require(spec["components"] as? [String: Any])
        let schemas = try #require(components["schemas"] as? [String: Any])
        let errorCodes = ((((schemas["Error"] as? [String: Any])?["properties"] as? [String: Any])?["error"] as? [String: Any])?["properties"]
            as? [String: Any])?["code"] as? [String: Any]
        #expect(Set(errorCodes?["enum"] as? [String] ?? []) == Set(APIErrorCode.allCases.map(\.rawValue)))
        let events = (schemas["StreamEvent"] as? [String: Any])?["oneOf"] as? [[String: Any]] ?? []
        let types = events.compactMap { (($0["properties"] as? [String: Any])?["type"] as? [String: Any])?["const"] as? String }
        #expect(Set(types) == Set(StreamEvent.Kind.allCases.map(\.rawValue)))
        let streamCodes = (events.last?["properties"] as? [String: Any]).flatMap { ($0["code"] as? [String: Any])?["enum"] as? [String] }
        #expect(Set(streamCodes ?? []) == Set(StreamErrorCode.allCases.map(\.rawValue)))

        // Every described operation is answered (not 404), and another method gets 405 with Allow. (With shadow rules:
        // without them GET /rules/shadow has nothing to report.)
        var config = configuration(rules: nil)
        config.shadowRulesPath = shippedRulesPath
        let app = try await buildApplication(configuration: config)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            for (path, methods) in served where !path.contains("{") {
                for method in methods {
                    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
                    request.method = .init(rawValue: method)
                    if method == "POST" {
                        request.headers.add(name: "content-type", value: "application/json")
                        request.body = .bytes(ByteBuffer(string: #"{"messages":[{"role":"user","content":"hi"}]}"#))
                    }
                    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                    #expect(![404, 405].contains(response.status.code), "\(method) \(path): \(response.status)")
                }
                var wrong = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
                wrong.method = methods.contains("GET") ? .DELETE : .GET
                let refused = try await HTTPClient.shared.execute(wrong, timeout: .seconds(10))
                #expect(refused.status == .methodNotAllowed, "\(path)")
                #expect(refused.headers.first(name: "allow") == methods.sorted().joined(separator: ", "), "\(path)")
                let body = try json(try await refused.body.collect(upTo: 1 << 16))
                #expect((body["error"] as? [String: Any])?["code"] as? String == "method_not_allowed")
            }
        }
    }
}

@Suite("The OpenAPI description, fuzzed", .timeLimit(.minutes(5)))
struct SchemathesisTests {
    static let available = commandSucceeds(["schemathesis", "--version"])

    @Test("Schemathesis: every answer to generated good and bad input is one the description allows, and none is a 5xx",
          .enabled(if: available))
    func fuzz() async throws {
        // The model service answers every call at once (a compatible endpoint would rightly answer 502 for one that
        // is down, before its first byte).
        try await MockAnthropic.run { mock in
            for _ in 0..<3_000 { mock.enqueue(.stream(SSE.textAnswer(["ok"]))) }
            var config = configuration(rules: nil)
            config.shadowRulesPath = shippedRulesPath
            var anthropic = AnthropicConfigurationForTests.make(baseURL: mock.baseURL)
            anthropic.retry.baseDelay = .milliseconds(5)
            config.anthropic = anthropic
            let app = try await buildApplication(configuration: config)
            let spec = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Docs/openapi.yaml")
                .standardized.path
            try await app.test(.live) { client in
                let port = try #require(client.port)
                // `positive_data_acceptance` is left out: the description cannot know the rules' route names or the
                // allowed models, which the server rightly refuses when a generated body names others.
                let result = try await runProcessAsync(URL(fileURLWithPath: "/usr/bin/env"), [
                    "schemathesis", "run", spec, "--url", "http://127.0.0.1:\(port)", "--max-examples", "25", "--seed", "1",
                    "--phases", "coverage,fuzzing", "--checks", "all", "--exclude-checks", "positive_data_acceptance",
                    "--request-timeout", "20",
                ])
                #expect(result.status == 0, "\(result.stdoutText.suffix(6_000))\(result.stderrText.suffix(2_000))")
            }
        }
    }
}
