import AnthropicMock
import ChatCore
import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import TestSupport
import Testing
@testable import Server

/// Three keys: a plain one with limits, an admin, and one limited to the fast route and a small model.
let webKey = "sb_web-test-key-0123456789abcdef"
let adminKey = "sb_admin-test-key-0123456789abcdef"
let fastKey = "sb_fast-only-key-0123456789abcdef"

/// A key's SHA-256 as the keys file writes it.
func digestHex(_ key: String) -> String {
    APIKey.digest(of: key).map { String(format: "%02x", $0) }.joined()
}

func keysYAML(webLimits: String = "{ concurrent_streams: 1, requests_per_minute: 100, output_tokens_per_day: 20, max_tokens: 300 }",
                      extra: String = "") -> String {
    """
    version: 1
    keys:
      - id: web
        sha256: \(digestHex(webKey))
        limits: \(webLimits)
      - id: ops
        sha256: \(digestHex(adminKey))
        admin: true
      - id: fast-only
        sha256: \(digestHex(fastKey))
        routes: [fast]
        models: [claude-haiku-4-5]
    \(extra)
    """
}

/// A log handler that keeps every line, to check what reaches the logs.
final class CapturedLog: @unchecked Sendable {
    private let lines = Mutex<[String]>([])
    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    func logger() -> Logger {
        var logger = Logger(label: "test") { _ in Handler(log: self) }
        logger.logLevel = .trace
        return logger
    }

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            log.lines.withLock { $0.append("\(event.level) \(event.message) \(all)") }
        }
    }
}

@Suite("Safe to expose: keys, quotas, caps, browser safety", .serialized, .timeLimit(.minutes(1)))
struct SecurityTests {
    struct Answer {
        let status: UInt
        let headers: [(String, String)]
        let json: [String: Any]
        var code: String? { (json["error"] as? [String: Any])?["code"] as? String }
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    func request(_ port: Int, _ path: String, method: HTTPMethod = .POST, key: String? = nil, keyHeader: String = "authorization",
                         body: String? = chatJSON("list employees in Berlin"), headers: [(String, String)] = [("content-type", "application/json")])
        async throws -> Answer
    {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        request.headers.add(contentsOf: headers)
        if let key { request.headers.add(name: keyHeader, value: keyHeader == "authorization" ? "Bearer \(key)" : key) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let data = try await response.body.collect(upTo: 1 << 20)
        let json = (try? JSONSerialization.jsonObject(with: Data(data.readableBytesView))) as? [String: Any] ?? [:]
        return Answer(status: response.status.code, headers: response.headers.map { ($0.name, $0.value) }, json: json)
    }

    func withServer(_ mock: MockAnthropic? = nil, keys: String = keysYAML(), log: CapturedLog? = nil,
                            configure: (inout ServerConfiguration) -> Void = { _ in },
                            _ body: @Sendable (Int, TemporaryRules, ServerMetrics) async throws -> Void) async throws {
        let file = try TemporaryRules(keys)
        defer { file.remove() }
        var config = mock.map { streamingConfiguration($0) } ?? configuration(rules: nil)
        config.apiKeysPath = file.path
        config.rulesPollInterval = .milliseconds(50)
        if log != nil { config.logLevel = .info }
        configure(&config)
        let metrics = ServerMetrics()
        let app = try await buildApplication(configuration: config, logger: log?.logger(), metrics: metrics)
        try await app.test(.live) { client in try await body(try #require(client.port), file, metrics) }
    }

    @Test("every endpoint but /health and /ready needs a key: missing is unauthorized, wrong is invalid_api_key")
    func authentication() async throws {
        try await withServer { port, _, _ in
            let missing = try await request(port, "/mcp/chat/analyze")
            #expect((missing.status, missing.code) == (401, "unauthorized"))
            let wrong = try await request(port, "/mcp/chat/analyze", key: "sb_not-a-key")
            #expect((wrong.status, wrong.code) == (401, "invalid_api_key"))
            #expect(try await request(port, "/mcp/chat/analyze", key: webKey).status == 200)
            #expect(try await request(port, "/mcp/chat/analyze", key: webKey, keyHeader: "x-api-key").status == 200)
            #expect(try await request(port, "/health", method: .GET, body: nil).status == 200)
            #expect(try await request(port, "/tools", method: .GET, body: nil).status == 401)
        }
    }

    @Test("/rules, /rules/calibration, /tools and /metrics need an admin key")
    func adminEndpoints() async throws {
        try await withServer { port, _, _ in
            for path in ["/rules", "/rules/calibration", "/tools", "/metrics"] {
                let plain = try await request(port, path, method: .GET, key: webKey, body: nil)
                #expect((plain.status, plain.code) == (403, "forbidden"), "\(path)")
                #expect(try await request(port, path, method: .GET, key: adminKey, body: nil).status == 200, "\(path)")
            }
        }
    }

    @Test("the keys file reloads live; a broken file keeps the last good keys")
    func keysReload() async throws {
        let newKey = "sb_new-key-0123456789abcdef0123"
        let log = CapturedLog()
        try await withServer(log: log) { port, file, _ in
            #expect(try await request(port, "/mcp/chat/analyze", key: newKey).status == 401)
            try file.write(keysYAML(extra: """
                  - id: new
                    sha256: \(digestHex(newKey))
                """))
            #expect(await eventually(within: .seconds(5)) { (try? await request(port, "/mcp/chat/analyze", key: newKey).status) == 200 })
            try file.write("version: 1\nkeys:\n  - { id: broken, sha256: not-hex }\n")
            #expect(await eventually(within: .seconds(5)) { log.text.contains("API keys not reloaded") })
            #expect(log.text.contains("sha256 must be 64 hexadecimal characters"))
            #expect(try await request(port, "/mcp/chat/analyze", key: newKey).status == 200, "the last good keys keep serving")
        }
    }

    @Test("with no keys, a non-loopback address is refused at start unless --allow-unauthenticated")
    func nonLoopbackNeedsKeys() async throws {
        var config = configuration(rules: nil)
        config.host = "0.0.0.0"
        await #expect(throws: StartupError.self) { _ = try await buildApplication(configuration: config) }
        do {
            _ = try await buildApplication(configuration: config)
        } catch let error as StartupError {
            #expect(error.description.contains("refusing to listen on 0.0.0.0 without API keys"))
            #expect(error.description.contains("--allow-unauthenticated"))
        }
        config.allowUnauthenticated = true
        _ = try await buildApplication(configuration: config)
        config.allowUnauthenticated = false
        config.apiKeys = ["sb_some-key"]
        _ = try await buildApplication(configuration: config)
    }

    @Test("a key's second concurrent stream is refused with too_many_streams, and the slot comes back when the first ends")
    func streamsPerKey() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([.pause(.milliseconds(800))] + SSE.textAnswer(["slow"])), .stream(SSE.textAnswer(["ok"])))
            try await withServer(mock) { port, _, _ in
                async let first = streamChat(port: port, body: chatJSON("hi"), headers: [("authorization", "Bearer \(webKey)")])
                #expect(await eventually { mock.received.count == 1 })
                let second = try await request(port, "/mcp/chat/stream", key: webKey)
                #expect((second.status, second.code) == (429, "too_many_streams"))
                #expect(second.header("retry-after") == "1")
                #expect(try await first.types.last == "complete")
                // The first stream's slot is free again.
                #expect(await eventually {
                    (try? await streamChat(port: port, body: chatJSON("again"), headers: [("authorization", "Bearer \(webKey)")]).status) == 200
                })
            }
        }
    }

    @Test("the server's stream limit answers 503 overloaded with Retry-After, before the upstream is called")
    func serverOverloaded() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([.pause(.milliseconds(600))] + SSE.textAnswer(["slow"])))
            try await withServer(mock, configure: { $0.limits.maxStreams = 1 }) { port, _, _ in
                async let first = streamChat(port: port, body: chatJSON("hi"), headers: [("authorization", "Bearer \(adminKey)")])
                #expect(await eventually { mock.received.count == 1 })
                let refused = try await request(port, "/mcp/chat/stream", key: adminKey)
                #expect((refused.status, refused.code) == (503, "overloaded"))
                #expect(refused.header("retry-after") == "1")
                _ = try await first
                #expect(mock.received.count == 1)
            }
        }
    }

    @Test("requests per minute: a token bucket; the refusal says when to come back")
    func rateLimited() async throws {
        try await withServer(keys: keysYAML(webLimits: "{ requests_per_minute: 2 }")) { port, _, metrics in
            #expect(try await request(port, "/mcp/chat/analyze", key: webKey).status == 200)
            #expect(try await request(port, "/mcp/chat/analyze", key: webKey).status == 200)
            let third = try await request(port, "/mcp/chat/analyze", key: webKey)
            #expect((third.status, third.code) == (429, "rate_limited"))
            let wait = try #require(third.header("retry-after").flatMap(Int.init))
            #expect(wait >= 1 && wait <= 30)
            // Another key has its own bucket.
            #expect(try await request(port, "/mcp/chat/analyze", key: adminKey).status == 200)
            let text = String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
            #expect(text.contains(#"switchboard_refusals_total{key="web",code="rate_limited"} 1"#))
            #expect(text.contains(#"switchboard_key_requests_total{key="web"} 3"#))
        }
    }

    @Test("output tokens per day: counted from each stream's usage; once spent, budget_exhausted until midnight UTC")
    func dailyBudget() async throws {
        try await MockAnthropic.run { mock in
            // SSE.textAnswer reports 15 output tokens; the key may spend 20 a day.
            mock.enqueue(.stream(SSE.textAnswer(["one"])), .stream(SSE.textAnswer(["two"])), .stream(SSE.textAnswer(["three"])))
            try await withServer(mock) { port, _, metrics in
                let auth = [("authorization", "Bearer \(webKey)")]
                #expect(try await streamChat(port: port, body: chatJSON("a"), headers: auth).types.last == "complete")
                #expect(try await streamChat(port: port, body: chatJSON("b"), headers: auth).types.last == "complete")
                let refused = try await request(port, "/mcp/chat/stream", key: webKey)
                #expect((refused.status, refused.code) == (429, "budget_exhausted"))
                let wait = try #require(refused.header("retry-after").flatMap(Int.init))
                #expect(wait >= 1 && wait <= 86_400)
                #expect(mock.received.count == 2)
                let text = String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
                #expect(text.contains(#"switchboard_key_tokens_total{key="web",direction="output"} 30"#))
            }
        }
    }

    @Test("maxTokens is lowered to the key's and the server's ceiling; the route's iterations never pass the server's")
    func caps() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["a"])), .stream(SSE.textAnswer(["b"])))
            try await withServer(mock, configure: { $0.limits.maxTokensCeiling = 2_000 }) { port, _, _ in
                _ = try await streamChat(port: port, body: chatJSON("a", extra: #","maxTokens":1000000"#),
                                         headers: [("authorization", "Bearer \(webKey)")])
                _ = try await streamChat(port: port, body: chatJSON("b", extra: #","maxTokens":1000000"#),
                                         headers: [("authorization", "Bearer \(adminKey)")])
                #expect(mock.received.map { $0.body["max_tokens"] as? Int } == [300, 2_000])
            }
        }
    }

    @Test("a model outside the allowed list is a 400 naming the allowed models; too many messages a 400 on messages")
    func modelsAndMessages() async throws {
        try await MockAnthropic.run { mock in try await modelsAndMessages(mock) }
    }

    private func modelsAndMessages(_ mock: MockAnthropic) async throws {
        try await withServer(mock, configure: { $0.limits.maxMessages = 3 }) { port, _, _ in
            let model = try await request(port, "/mcp/chat/stream", key: adminKey, body: chatJSON("hi", extra: #","model":"claude-opus-9""#))
            #expect((model.status, model.code) == (400, "model_not_allowed"))
            let error = try #require(model.json["error"] as? [String: Any])
            #expect(error["field"] as? String == "model")
            #expect((error["message"] as? String)?.contains("claude-haiku-4-5") == true)
            let narrow = try await request(port, "/mcp/chat/stream", key: fastKey, body: chatJSON("hi", extra: #","model":"claude-sonnet-4-5""#))
            #expect(narrow.code == "forbidden", "a key limited to routes uses smart routing only")
            let many = String(repeating: #"{"role":"user","content":"x"},"#, count: 4).dropLast()
            let messages = try await request(port, "/mcp/chat/stream", key: adminKey, body: #"{"messages":[\#(many)]}"#)
            #expect((messages.status, messages.code) == (400, "invalid_request"))
            #expect((messages.json["error"] as? [String: Any])?["field"] as? String == "messages")
            #expect(mock.received.isEmpty, "refused before the upstream was called")
        }
    }

    @Test("a key limited to routes may not be sent to another: a chat routed elsewhere is refused, advice still answers")
    func routesPerKey() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["ok"])))
            try await withServer(mock) { port, _, _ in
                let auth = [("authorization", "Bearer \(fastKey)")]
                #expect(try await streamChat(port: port, body: chatJSON("list employees in Berlin"), path: "/mcp/chat", headers: auth)
                    .types.last == "complete")
                let moderate = try await request(port, "/mcp/chat", key: fastKey, body: chatJSON("average salary by location"))
                #expect((moderate.status, moderate.code) == (403, "forbidden"))
                let advice = try await request(port, "/mcp/chat", key: fastKey, body: chatJSON("make a pie chart of staff"))
                #expect(advice.status == 200 && advice.json["action"] as? String == "advise")
                // Naming another route in the body does not get around the key's list.
                let overridden = try await request(port, "/mcp/chat", key: fastKey,
                                                   body: chatJSON("list employees in Berlin", extra: #","route":"standard""#))
                #expect((overridden.status, overridden.code) == (403, "forbidden"))
                #expect(mock.received.count == 1)
            }
        }
    }

    @Test("browser safety: JSON bodies only, known hosts only, allowed origins only")
    func browserSafety() async throws {
        try await withServer(configure: { $0.cors = .origins(["https://app.example"]) }) { port, _, _ in
            let plain = try await request(port, "/mcp/chat/analyze", key: webKey, headers: [("content-type", "text/plain")])
            #expect((plain.status, plain.code) == (415, "unsupported_media_type"))
            let none = try await request(port, "/mcp/chat/analyze", key: webKey, headers: [])
            #expect(none.status == 415)
            let rebound = try await request(port, "/mcp/chat/analyze", key: webKey,
                                            headers: [("content-type", "application/json"), ("host", "attacker.example:\(port)")])
            #expect((rebound.status, rebound.code) == (403, "host_not_allowed"))
            let named = try await request(port, "/mcp/chat/analyze", key: webKey,
                                          headers: [("content-type", "application/json"), ("host", "localhost:\(port)")])
            #expect(named.status == 200)
            #expect(try await request(port, "/health", method: .GET, body: nil, headers: [("host", "10.0.0.7:\(port)")]).status == 200)
            let foreign = try await request(port, "/mcp/chat/analyze", key: webKey,
                                            headers: [("content-type", "application/json"), ("origin", "https://evil.example")])
            #expect((foreign.status, foreign.code) == (403, "origin_not_allowed"))
            let allowed = try await request(port, "/mcp/chat/analyze", key: webKey,
                                            headers: [("content-type", "application/json"), ("origin", "https://app.example")])
            #expect(allowed.status == 200)
        }
    }

    @Test("a key never appears in logs, errors or metrics; logs carry the key id and the request id")
    func keyNeverLeaks() async throws {
        let log = CapturedLog()
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["ok"])))
            try await withServer(mock, log: log) { port, _, metrics in
                let wrong = try await request(port, "/mcp/chat/analyze", key: "sb_wrong-secret-key-value")
                let stream = try await streamChat(port: port, body: chatJSON("hi"), headers: [("authorization", "Bearer \(webKey)")])
                #expect(stream.types.last == "complete")
                // The server logs the stream's end after writing its last byte: wait for the line.
                #expect(await eventually(within: .seconds(10)) { log.text.contains("stream finished") })
                let metricsText = String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
                let everything = [log.text, metricsText, "\(wrong.json)", stream.arrivals.map { "\($0.json)" }.joined()].joined()
                for secret in [webKey, "sb_wrong-secret-key-value", String(webKey.dropFirst(3))] {
                    #expect(!everything.contains(secret))
                }
                let finished = try #require(log.text.split(separator: "\n").first { $0.contains("stream finished") })
                #expect(finished.contains(#""key": web"#))
                #expect(finished.contains("hb.request.id"))
                #expect(!log.text.contains("hi\""), "no prompt in the logs")
            }
        }
    }

    @Test("--admin-port serves the operator's endpoints without a key, on loopback; the main port still asks for an admin key")
    func adminPort() async throws {
        let adminPort = freeLoopbackPort()
        try await withServer(configure: { $0.adminPort = adminPort }) { port, _, _ in
            #expect(await eventually(within: .seconds(10)) { acceptsConnections(port: adminPort) })
            for path in ["/metrics", "/rules", "/rules/calibration", "/tools", "/health"] {
                #expect(try await request(adminPort, path, method: .GET, body: nil).status == 200, "\(path)")
            }
            #expect(try await request(port, "/metrics", method: .GET, body: nil).status == 401)
            let rebound = try await request(adminPort, "/tools", method: .GET, body: nil, headers: [("host", "attacker.example")])
            #expect(rebound.code == "host_not_allowed")
        }
    }

    @Test("the admin port answers 127.0.0.1:PORT and localhost:PORT whatever --allowed-hosts says (Prometheus scrapes it so)")
    func adminPortLoopbackHosts() async throws {
        let adminPort = freeLoopbackPort()
        try await withServer(configure: { $0.adminPort = adminPort; $0.allowedHosts = ["Switchboard.Example.com"] }) { port, _, _ in
            #expect(await eventually(within: .seconds(10)) { acceptsConnections(port: adminPort) })
            for host in ["127.0.0.1:\(adminPort)", "localhost:\(adminPort)"] {
                #expect(await rawGetStatus(port: adminPort, target: "/metrics", headers: [("Host", host)]) == 200, "\(host)")
            }
            // --allowed-hosts is compared case-insensitively on the main port.
            let mixed = try await request(port, "/health", method: .GET, body: nil, headers: [("host", "SWITCHBOARD.example.COM")])
            #expect(mixed.status == 200)
            let keyed = try await request(port, "/mcp/chat/analyze", key: webKey, headers: [("host", "switchboard.EXAMPLE.com"),
                                                                                         ("content-type", "application/json")])
            #expect(keyed.status == 200)
        }
    }

    @Test("a non-loopback --admin-host needs keys (then an admin key) or --allow-unauthenticated, like the main port")
    func adminHostBeyondLoopback() async throws {
        var config = configuration(rules: nil)
        config.adminPort = freeLoopbackPort()
        config.adminHost = "0.0.0.0"
        await #expect {
            _ = try await buildApplication(configuration: config)
        } throws: { error in
            "\(error)".contains("refusing to serve the admin port on 0.0.0.0 without API keys")
        }
        let adminPort = freeLoopbackPort()
        try await withServer(configure: { $0.adminPort = adminPort; $0.adminHost = "0.0.0.0" }) { _, _, _ in
            #expect(await eventually(within: .seconds(10)) { acceptsConnections(port: adminPort) })
            let statuses = [
                try await request(adminPort, "/metrics", method: .GET, body: nil).status,
                try await request(adminPort, "/metrics", method: .GET, key: webKey, body: nil).status,
                try await request(adminPort, "/metrics", method: .GET, key: adminKey, body: nil).status,
                try await request(adminPort, "/health", method: .GET, body: nil).status,
            ]
            #expect(statuses == [401, 403, 200, 200])
        }
    }

    @Test("a host is loopback only if it parses as a loopback address")
    func loopbackByAddress() {
        for host in ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "0:0:0:0:0:0:0:1", "localhost", "LOCALHOST"] {
            #expect(Loopback.isLoopback(host: host), "\(host)")
        }
        for host in ["127.corp.example", "127.0.0.1.nip.io", "0.0.0.0", "::", "10.0.0.1", "example.com", "", "::2", "128.0.0.1"] {
            #expect(!Loopback.isLoopback(host: host), "\(host)")
        }
        var config = configuration(rules: nil)
        config.host = "127.corp.example"
        #expect(!config.isLoopback)
    }
}
