import AnthropicMock
import ChatCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import HummingbirdTesting
import Logging
import Storage
import Synchronization
import ConfigFiles
import TestSupport
import Testing
import Tools
import Upstream
@testable import Server

/// A tool whose failure carries what must never reach a client or the model.
private struct LeakyTool: Tool {
    struct DatabaseFailure: Error, CustomStringConvertible {
        var description: String { "SQLite error 1: no such column: salary_secret in \"SELECT salary_secret FROM employees\"" }
    }

    let definition = ToolDefinition(name: "leaky", description: "fails", inputSchema: ["type": "object"])

    func execute(_ input: JSONValue) async throws -> ToolOutput {
        throw DatabaseFailure()
    }
}

@Suite("Hardening", .serialized, .timeLimit(.minutes(1)))
struct HardeningTests {
    @Test("a tool's internal error reaches the client and the model as a short generic sentence, never its SQL")
    func genericToolErrors() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.toolTurn(text: nil, tools: [(id: "t1", name: "leaky", fragments: ["{}"])])),
                         .stream(SSE.textAnswer(["sorry"])))
            let app = try await buildApplication(configuration: streamingConfiguration(mock), tools: [LeakyTool()])
            try await app.test(.live) { client in
                let stream = try await streamChat(port: try #require(client.port), body: chatJSON("hi"))
                let failed = try #require(stream.events("tool_progress").last)
                #expect(failed["status"] as? String == "failed")
                let shown = try #require(failed["error"] as? String)
                #expect(shown.contains("internal error"))
                let messages = try #require(mock.received.last?.body["messages"] as? [[String: Any]])
                let result = try #require((messages.last?["content"] as? [[String: Any]])?.first?["content"] as? String)
                for text in [shown, result] {
                    #expect(!text.contains("SELECT") && !text.contains("salary_secret"), "\(text)")
                }
            }
        }
    }
}

@Suite("Configuration ranges")
struct ConfigurationRangeTests {
    @Test("values that are not numbers, infinite, zero, negative or huge are named, not trapped on or ignored")
    func environmentProblems() {
        let config = ServerConfiguration(environment: [
            "SWITCHBOARD_PORT": "http", "SWITCHBOARD_KEEPALIVE_SECONDS": "inf", "SWITCHBOARD_MAX_ITERATIONS": "0",
            "SWITCHBOARD_TOOL_TIMEOUT_SECONDS": "-5", "SWITCHBOARD_MAX_BODY_BYTES": "99999999999999", "LOG_LEVEL": "loud",
            "SWITCHBOARD_MAX_STREAMS": "2000",
        ])
        #expect(config.problems == [
            "SWITCHBOARD_PORT=http is not a whole number from 0 to 65535",
            "SWITCHBOARD_MAX_BODY_BYTES=99999999999999 is not a whole number from 1 to 67108864",
            "LOG_LEVEL=loud is not a log level",
            "SWITCHBOARD_KEEPALIVE_SECONDS=inf is not a number of seconds from 0.01 to 3600",
            "SWITCHBOARD_MAX_ITERATIONS=0 is not a whole number from 1 to 100",
            "SWITCHBOARD_TOOL_TIMEOUT_SECONDS=-5 is not a number of seconds from 0.01 to 86400",
        ])
        // The good ones still apply, the bad ones keep their defaults.
        #expect(config.limits.maxStreams == 2000)
        #expect(config.port == 3000)
    }

    @Test("upstream settings stand alone: read (and checked) without ANTHROPIC_API_KEY, for OpenAI-compatible providers too")
    func upstreamSettingsStandAlone() {
        let config = ServerConfiguration(environment: [
            "SWITCHBOARD_UPSTREAM_TIMEOUT": "12", "SWITCHBOARD_UPSTREAM_IDLE_TIMEOUT": "7", "SWITCHBOARD_UPSTREAM_MAX_CONNECTIONS": "64",
            "SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT": "soon",
        ])
        #expect(config.anthropic == nil)
        #expect(config.upstream.timeouts.overall == .seconds(12))
        #expect(config.upstream.timeouts.idle == .seconds(7))
        #expect(config.upstream.maxConnections == 64)
        #expect(config.problems == ["SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT=soon is not a number of seconds from 0.01 to 86400"])
        let keyed = ServerConfiguration(environment: ["ANTHROPIC_API_KEY": "sk-ant-x", "SWITCHBOARD_UPSTREAM_TIMEOUT": "12"])
        #expect(keyed.anthropic?.timeouts.overall == .seconds(12))
    }

    @Test("SWITCHBOARD_UPSTREAM_CA_FILE must be a readable PEM file of certificates, and reaches the built-in client")
    func upstreamCAFile() throws {
        let missing = ServerConfiguration(environment: ["SWITCHBOARD_UPSTREAM_CA_FILE": "/nonexistent/ca.pem"])
        #expect(missing.problems == ["SWITCHBOARD_UPSTREAM_CA_FILE: /nonexistent/ca.pem is not a readable PEM file of certificates"])
        #expect(missing.upstream.caFile == nil)
        let notPEM = FileManager.default.temporaryDirectory.appendingPathComponent("not-a-ca-\(UUID().uuidString).pem").path
        try "hello".write(toFile: notPEM, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: notPEM) }
        #expect(ServerConfiguration(environment: ["SWITCHBOARD_UPSTREAM_CA_FILE": notPEM]).problems.count == 1)
        // The system's own bundle is a PEM file of certificates.
        let bundle = "/etc/ssl/certs/ca-certificates.crt"
        try #require(FileManager.default.fileExists(atPath: bundle), "Debian's ca-certificates, which https providers need too")
        let good = ServerConfiguration(environment: ["SWITCHBOARD_UPSTREAM_CA_FILE": bundle, "ANTHROPIC_API_KEY": "sk-ant-x"])
        #expect(good.problems.isEmpty)
        #expect(good.upstream.caFile == bundle && good.anthropic?.caFile == bundle)
    }

    @Test("tracing is on only when an OTLP endpoint is named and the SDK and exporter are not turned off; content capture is true, false or refused, and reaches the model clients and the loop")
    func tracingSettings() {
        #expect(!ServerConfiguration(environment: [:]).tracing)
        #expect(ServerConfiguration(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"]).tracing)
        #expect(ServerConfiguration(environment: ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"]).tracing)
        #expect(!ServerConfiguration(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": " "]).tracing)
        #expect(!ServerConfiguration(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"]).tracing)
        #expect(!ServerConfiguration(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"]).tracing)
        #expect(ServerConfiguration(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "false"]).tracing)

        let captured = ServerConfiguration(environment: ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "True",
                                                         "ANTHROPIC_API_KEY": "sk-ant-x"])
        #expect(captured.captureContent && captured.upstream.captureContent && captured.loop.captureContent)
        #expect(captured.anthropic?.captureContent == true)
        let off = ServerConfiguration(environment: ["ANTHROPIC_API_KEY": "sk-ant-x"])
        #expect(!off.captureContent && !off.loop.captureContent && off.anthropic?.captureContent == false)
        let bad = ServerConfiguration(environment: ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "yes"])
        #expect(bad.problems == ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=yes must be true or false"])
        #expect(!bad.captureContent)
        // What the tracing library would stop the process on is refused by name instead.
        let grpc = ServerConfiguration(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                                                     "OTEL_TRACES_SAMPLER": "parentbased_jaeger_remote"])
        #expect(grpc.problems == [
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not available in this build: use http/protobuf or http/json",
            "OTEL_TRACES_SAMPLER=parentbased_jaeger_remote is not supported: use always_on, always_off, traceidratio or their parentbased_ forms",
        ])
    }

    @Test("the server refuses to start with them, listing each")
    func refusesToStart() async throws {
        var config = ServerConfiguration(environment: ["SWITCHBOARD_KEEPALIVE_SECONDS": "inf"])
        config.adminPort = 3000
        do {
            _ = try await buildApplication(configuration: config)
            Issue.record("the server started")
        } catch let error as StartupError {
            #expect(error.description == """
                cannot start: the configuration is invalid
                  - SWITCHBOARD_KEEPALIVE_SECONDS=inf is not a number of seconds from 0.01 to 3600
                  - the admin port must differ from the port (3000)
                """)
        }
    }
}

/// A database that refuses every query.
private struct DownDatabase: SQLDatabase {
    struct Down: Error {}
    var description: String { "down" }
    func fetch(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] { throw Down() }
    func transaction(_ statements: [(sql: String, arguments: [SQLValue])]) async throws { throw Down() }
}

/// A real SQLite database that counts the queries it answers.
private final class CountingDatabase: SQLDatabase, @unchecked Sendable {
    let base: SQLiteDatabase
    private let count = Mutex(0)
    var queries: Int { count.withLock { $0 } }
    init() throws { base = try SQLiteDatabase() }
    var description: String { base.description }
    func fetch(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        count.withLock { $0 += 1 }
        return try await base.fetch(sql, arguments)
    }
    func transaction(_ statements: [(sql: String, arguments: [SQLValue])]) async throws { try await base.transaction(statements) }
}

@Suite("GET /ready")
struct ReadinessTests {
    @Test("a flood of probes costs the database one query a second, not one per probe")
    func probesReuseTheCheck() async throws {
        let database = try CountingDatabase()
        let readiness = Readiness(database: database)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<200 { group.addTask { #expect(await readiness.reasons().isEmpty) } }
        }
        #expect(database.queries <= 2, "\(database.queries) queries for 200 probes")
        let before = database.queries
        try await Task.sleep(for: .milliseconds(1_100))
        _ = await readiness.reasons()
        #expect(database.queries == before + 1, "a second later the database is asked again")
    }

    private func router(_ readiness: Readiness) throws -> Router<SwitchboardRequestContext> {
        let rules = try #require(RulesFile.load(.embedded).accepted)
        return buildRouter(rules: RulesStore(rules: rules, source: .embedded), configuration: configuration(rules: nil),
                           model: AnthropicClient?.none, tools: ToolBox([]), readiness: readiness, logger: Logger(label: "test"))
    }

    private func ready(_ readiness: Readiness) async throws -> (UInt, [String: Any]) {
        let app = Application(router: try router(readiness))
        return try await app.test(.router) { client in
            try await client.execute(uri: "/ready", method: .get) { response in (UInt(response.status.code), try json(response.body)) }
        }
    }

    @Test("200 while the database answers; 503 with the reasons once shutdown begins or the database fails")
    func states() async throws {
        let readiness = Readiness(database: try SQLiteDatabase())
        let (status, body) = try await ready(readiness)
        #expect(status == 200 && body["status"] as? String == "ready")
        readiness.beginShutdown()
        let (closing, reasons) = try await ready(readiness)
        #expect(closing == 503)
        #expect(reasons["reasons"] as? [String] == ["shutting down"])
        let (down, downBody) = try await ready(Readiness(database: DownDatabase()))
        #expect(down == 503)
        #expect(downBody["reasons"] as? [String] == ["the database cannot be queried"])
    }

    @Test("/ready, /metrics and every answer's X-Switchboard-Instance name the instance and the rules and keys it serves; a reload shows")
    func identity() async throws {
        let identityRules = """
            version: 1
            levels:
              - { name: any, route: fast, estimated_seconds: 2 }
            routes:
              fast: { action: advise, message: "hello" }
            """
        let rules = try TemporaryRules(identityRules)
        defer { rules.remove() }
        let keysFile = try TemporaryRules("""
            version: 1
            keys:
              - { id: ops, sha256: \(String(repeating: "ab", count: 32)), admin: true }
            """)
        defer { keysFile.remove() }
        var config = configuration(rules: rules.path)
        config.instanceID = "sb-test-1"
        config.apiKeysPath = keysFile.path
        config.adminPort = 0
        config.rulesPollInterval = .milliseconds(20)
        let metrics = ServerMetrics()
        let app = try await buildApplication(configuration: config, metrics: metrics)
        try await app.test(.live) { client in
            let ready = try await client.execute(uri: "/ready", method: .get) { response in
                (response.headers[.switchboardInstance], try json(response.body))
            }
            #expect(ready.0 == "sb-test-1")
            #expect(ready.1["instance"] as? String == "sb-test-1")
            let rulesVersion = try #require(ready.1["rulesVersion"] as? String)
            #expect(rulesVersion.hasPrefix("sha256:"))
            let keysVersion = try #require(ready.1["keysVersion"] as? String)
            #expect(keysVersion.hasPrefix("sha256:"))
            // Refused requests carry it too.
            let refused = try await client.execute(uri: "/tools", method: .get) { response in
                (response.status, response.headers[.switchboardInstance])
            }
            #expect(refused.0 == .unauthorized && refused.1 == "sb-test-1")

            metrics.refreshInstance()
            let before = String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
            #expect(before.contains(#"switchboard_instance_info{instance="sb-test-1",rules_version="\#(rulesVersion)",keys_version="\#(keysVersion)"} 1"#),
                    "\(before.split(separator: "\n").filter { $0.contains("instance_info") })")

            // The rules change: the one series is replaced, not added to.
            try rules.write(identityRules + "\n# edited\n")
            #expect(await eventually(within: .seconds(5)) {
                let now = try? await client.execute(uri: "/ready", method: .get) { try json($0.body)["rulesVersion"] as? String }
                return now != nil && now != rulesVersion
            })
            metrics.refreshInstance()
            let after = String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
            let series = after.split(separator: "\n").filter { $0.hasPrefix("switchboard_instance_info{") }
            #expect(series.count == 1, "\(series)")
            #expect(series.first?.contains(rulesVersion) == false)
        }
    }

    @Test("an instance id is letters, digits, dots, dashes and underscores; the default is the host name and six hex digits")
    func instanceIDs() {
        #expect(ServerConfiguration.isValidInstanceID("sb-eu_1.a"))
        #expect(!ServerConfiguration.isValidInstanceID(""))
        #expect(!ServerConfiguration.isValidInstanceID("a b"))
        #expect(!ServerConfiguration.isValidInstanceID(String(repeating: "a", count: 65)))
        #expect(!ServerConfiguration.isValidInstanceID("é"))
        let one = ServerConfiguration.defaultInstanceID(), two = ServerConfiguration.defaultInstanceID()
        #expect(ServerConfiguration.isValidInstanceID(one) && one != two)
        #expect(one.split(separator: "-").last?.count == 6)
        let config = ServerConfiguration(environment: ["SWITCHBOARD_INSTANCE_ID": "no spaces please"])
        #expect(config.instanceID != "no spaces please")
        #expect(config.environmentProblems.contains { $0.contains("SWITCHBOARD_INSTANCE_ID") })
        #expect(ServerConfiguration(environment: ["SWITCHBOARD_INSTANCE_ID": "eu-2"]).instanceID == "eu-2")
    }
}

/// Sends `bytes` on a new connection and waits until the server closes it; whether it did within `limit`.
private func serverCloses(port: Int, after bytes: String, within limit: Int) async -> Bool {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            guard let fd = connectedLoopbackSocket(port: port, receiveTimeout: limit) else { return continuation.resume(returning: false) }
            defer { close(fd) }
            _ = Array(bytes.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            var buffer = [UInt8](repeating: 0, count: 1024)
            // 0: the server closed the connection; -1: our receive timeout ran out first.
            continuation.resume(returning: recv(fd, &buffer, buffer.count, 0) == 0)
        }
    }
}

@Suite("Slow clients", .serialized, .timeLimit(.minutes(1)))
struct SlowClientTests {
    @Test("a client that never finishes its request head is disconnected after the idle timeout; a slow stream is not")
    func slowLoris() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([.pause(.milliseconds(2_500))] + SSE.textAnswer(["late but fine"])))
            var config = streamingConfiguration(mock)
            // Long enough that a loaded machine gets the stream's request onto its new connection before the
            // connection counts as idle (at 300 ms a busy suite once saw it closed under the request).
            config.idleTimeout = .seconds(1)
            let app = try await buildApplication(configuration: config)
            try await app.test(.live) { client in
                let port = try #require(client.port)
                // Alone this closes after the 1 s; inside the full suite it has taken up to 10 s, so the bound is loose.
                #expect(await serverCloses(port: port, after: "POST /mcp/chat/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le", within: 25))
                #expect(await serverCloses(port: port, after: "", within: 25), "an idle connection is closed too")
                let stream = try await streamChat(port: port, body: chatJSON("hi"))
                #expect(stream.types.last == "complete", "a stream answered for longer than the idle timeout is not idle")
            }
        }
    }
}

@Suite("Clients that stop reading", .serialized, .timeLimit(.minutes(1)))
struct WriteDeadlineTests {
    @Test("a client that pauses reading gets every event once, in order: writes wait for the connection, then the relay resumes")
    func slowReader() async throws {
        try await MockAnthropic.run { mock in
            // With accumulated text the stream is about 80 MB: far more than the sockets hold while the client pauses.
            let deltas = (0..<400).map { String(repeating: Character(UnicodeScalar(UInt8(97 + $0 % 26))), count: 1_000) }
            mock.enqueue(.stream(SSE.textAnswer(deltas)))
            let metrics = ServerMetrics()
            let app = try await buildApplication(configuration: streamingConfiguration(mock), metrics: metrics)
            try await app.test(.live) { client in
                let response = try await postChat(port: try #require(client.port), body: chatJSON("write a lot"), timeout: .seconds(60))
                try await Task.sleep(for: .seconds(1))
                let received = try await receiveStream(response)
                #expect(received.arrivals.map(\.id) == (1...received.arrivals.count).map { "\($0)" })
                let chunks = received.events("text_chunk")
                #expect(chunks.count == deltas.count)
                #expect(zip(chunks, deltas).allSatisfy { $0["chunk"] as? String == $1 })
                #expect((chunks.last?["accumulated"] as? String)?.utf8.count == 400_000)
                #expect(received.arrivals.last?.type == "complete")
                // Some text went out where the upstream was read, and some, while the connection was full, through
                // the stream's task once the client read again.
                let text = String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
                let relayed = text.split(separator: "\n").first { $0.hasPrefix("switchboard_stream_events_relayed_total ") }
                    .flatMap { Int($0.split(separator: " ").last ?? "") } ?? -1
                #expect(relayed > 0 && relayed < deltas.count, "relayed \(relayed)")
            }
        }
    }

    @Test("a client that reads nothing is dropped after the write timeout; its upstream request closes, unfinished")
    func dropped() async throws {
        try await MockAnthropic.run { mock in
            let answer = SSE.textAnswer(Array(repeating: String(repeating: "z", count: 2_000), count: 3_000))
            // Paced over about 3 s, so the mock is still sending when the deadline drops the client, even on a busy machine.
            mock.enqueue(.stream(SSE.paced(answer, pauseEvery: 5, for: .milliseconds(5))))
            var config = streamingConfiguration(mock)
            config.writeTimeout = .milliseconds(300)
            let metrics = ServerMetrics()
            let app = try await buildApplication(configuration: config, metrics: metrics)
            try await app.test(.live) { client in
                let reader = try NonReadingClient(port: try #require(client.port), body: chatJSON("write a lot"))
                defer { reader.release() }
                // The client never closes its socket: only the write deadline can end the stream as "client gone".
                #expect(await eventually(within: .seconds(20)) {
                    String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
                        .contains(#"switchboard_streams_total{outcome="client_gone"} 1"#)
                })
                // Far less than the answer (gigabytes with accumulated text) was written.
                let events = String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
                    .split(separator: "\n").first { $0.hasPrefix("switchboard_stream_events_total ") }
                let count = Int(events?.split(separator: " ").last ?? "") ?? .max
                #expect(count < 3_000)
                #expect(await eventually(within: .seconds(10)) { !mock.disconnects.isEmpty }, "the upstream request is closed")
                #expect(mock.finished == 0)
            }
        }
    }
}
