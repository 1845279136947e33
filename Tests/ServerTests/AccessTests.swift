import AnthropicMock
import ChatCore
import Routing
import ConfigFiles
import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import TestSupport
import Testing
@testable import Server

/// Keys of the access tests, beside SecurityTests' web, ops and fast-only.
private let haikuKey = "sb_haiku-only-key-0123456789abcdef"
private let hrLiteKey = "sb_hr-lite-key-0123456789abcdef"
private let stingyKey = "sb_stingy-key-0123456789abcdef"

private func accessKeys(_ more: String = "") -> String {
    keysYAML(extra: """
          - id: haiku
            sha256: \(digestHex(haikuKey))
            models: [claude-haiku-4-5]
          - id: hr-lite
            sha256: \(digestHex(hrLiteKey))
            tools: [get_departments]
          - id: stingy
            sha256: \(digestHex(stingyKey))
            limits: { output_tokens_per_day: 10, requests_per_minute: 1000 }
        \(more)
        """)
}

extension SecurityTests {
    @Test("admin endpoints are admin whatever the spelling: a non-admin key gets none of them", arguments: [
        "/metrics/", "//metrics", "/metrics?x=1", "/./metrics", "/%6Detrics", "/METRICS", "/rules/", "/rules//calibration",
        "/tools/", "/rules/calibration/", "/x/../metrics", "/rules?", "/tools//", "/metrics#frag",
    ])
    func adminWhateverSpelling(target: String) async throws {
        try await withServer { port, _, _ in
            let status = await rawGetStatus(port: port, target: target, headers: [("Authorization", "Bearer \(webKey)")])
            #expect(status != nil && status != 200, "\(target) answered \(status.map(String.init) ?? "nothing")")
            // The admin key still reads the canonical spelling.
            #expect(await rawGetStatus(port: port, target: "/metrics", headers: [("Authorization", "Bearer \(adminKey)")]) == 200)
        }
    }

    @Test("every route the router has is public, a client's, or refused to a non-admin key")
    func everyRouteHasAnAccessLevel() async throws {
        let publicRoutes: Set<String> = ["GET /", "GET /client.js", "GET /playground.js", "GET /health", "GET /ready"]
        let clientRoutes: Set<String> = ["POST /mcp/chat/stream", "GET /mcp/chat/stream/{sessionId}", "DELETE /mcp/chat/stream/{sessionId}",
                                         "POST /mcp/chat/analyze", "POST /mcp/chat", "POST /v1/chat/completions", "POST /v1/messages", "POST /mcp/chat/feedback",
                                         "GET /v1/models"]
        let file = try TemporaryRules(keysYAML())
        defer { file.remove() }
        var config = configuration(rules: nil)
        config.apiKeysPath = file.path
        let keys = try #require(try openAPIKeys(config, logger: Logger(label: "test")))
        let router = buildRouter(rules: RulesStore(rules: RulesFile.load(.embedded).accepted!, source: .embedded),
                                 configuration: config, model: Optional<MockModelForAccess>.none, tools: ToolBox([]), keys: keys,
                                 logger: Logger(label: "test"))
        let routes = router.routes.map { ($0.method, $0.path.description) }
        #expect(routes.count >= publicRoutes.count + clientRoutes.count)
        let app = Application(router: router)
        try await app.test(.router) { client in
            for (method, path) in routes {
                let name = "\(method.rawValue) \(path)"
                let uri = path.replacingOccurrences(of: "{sessionId}", with: "nosuchsession")
                let body = method == .post ? ByteBuffer(string: chatJSON("hi")) : nil
                let headers: HTTPFields = [.contentType: "application/json"]
                var withKey = headers
                withKey[.authorization] = "Bearer \(webKey)"
                if publicRoutes.contains(name) {
                    let status = try await client.execute(uri: uri, method: method, headers: headers, body: body) { $0.status }
                    #expect(status != .unauthorized && status != .forbidden, "\(name) is public")
                } else if clientRoutes.contains(name) {
                    let anonymous = try await client.execute(uri: uri, method: method, headers: headers, body: body) { $0.status }
                    #expect(anonymous == .unauthorized, "\(name) needs a key")
                    let keyed = try await client.execute(uri: uri, method: method, headers: withKey, body: body) { $0.status }
                    #expect(keyed != .unauthorized && keyed != .forbidden, "\(name) takes any key")
                } else {
                    let keyed = try await client.execute(uri: uri, method: method, headers: withKey, body: body) { $0.status }
                    #expect(keyed == .forbidden, "\(name) is neither public nor a client's, so it must be admin-only")
                }
            }
        }
    }

    @Test("the model a chat runs on is the one checked: naming no model does not reach a default the key may not use")
    func effectiveModel() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["ok"])))
            try await withServer(mock, keys: accessKeys()) { port, _, _ in
                let unnamed = try await request(port, "/mcp/chat/stream", key: haikuKey)
                #expect((unnamed.status, unnamed.code) == (400, "model_not_allowed"))
                let error = try #require(unnamed.json["error"] as? [String: Any])
                #expect(error["field"] as? String == "model")
                #expect((error["message"] as? String)?.contains("claude-haiku-4-5") == true)
                let named = try await streamChat(port: port, body: chatJSON("hi", extra: #","model":"claude-haiku-4-5""#),
                                                 headers: [("authorization", "Bearer \(haikuKey)")])
                #expect(named.types.last == "complete")
                #expect(mock.received.map { $0.body["model"] as? String } == ["claude-haiku-4-5"])
            }
        }
    }

    @Test("SWITCHBOARD_ALLOWED_MODELS applies to the default model too, and together with a key's list")
    func serverModelList() async throws {
        try await MockAnthropic.run { mock in
            try await withServer(mock, keys: accessKeys(), configure: { $0.limits.allowedModels = ["claude-haiku-4-5", "claude-opus-4"] }) {
                port, _, _ in
                let unnamed = try await request(port, "/mcp/chat/stream", key: adminKey)
                #expect((unnamed.status, unnamed.code) == (400, "model_not_allowed"))
                let outside = try await request(port, "/mcp/chat/stream", key: haikuKey, body: chatJSON("hi", extra: #","model":"claude-opus-4""#))
                #expect((outside.status, outside.code) == (400, "model_not_allowed"), "on the server's list but not the key's")
                #expect(mock.received.isEmpty)
            }
        }
    }

    @Test("a route's fallback on a model the key may not use is never called")
    func fallbackModelsChecked() async throws {
        try await MockAnthropic.run { mock in
            let rules = try TemporaryRules(fallbackRulesYAML(mock))
            defer { rules.remove() }
            let llamaKey = "sb_llama-only-key-0123456789abcdef"
            let keys = accessKeys("""
                  - id: llama
                    sha256: \(digestHex(llamaKey))
                    models: ["llama3.1:8b"]
                """)
            mock.enqueue(.status(503, body: #"{"error":{"message":"busy","type":"server_error","code":null}}"#), .stream(SSE.textAnswer(["Claude"])))
            try await withServer(mock, keys: keys, configure: { $0.rulesPath = rules.path }) { port, _, _ in
                let stream = try await streamChat(port: port, body: chatJSON("list the people"), path: "/mcp/chat",
                                                  headers: [("authorization", "Bearer \(llamaKey)")])
                #expect(stream.types.last == "error")
                // The route's own provider is tried (and retried: with no fallback left, its retry policy applies).
                #expect(!mock.received.isEmpty)
                #expect(mock.received.allSatisfy { $0.body["model"] as? String == "llama3.1:8b" }, "the fallback's model was never sent")
            }
        }
    }

    @Test("a key's tools: only they are offered upstream and only they run; an unknown name in the file is refused at file:line:col")
    func toolsPerKey() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.toolTurn(text: nil, tools: [(id: "t1", name: "get_employees", fragments: ["{}"])])),
                         .stream(SSE.textAnswer(["done"])))
            try await withServer(mock, keys: accessKeys()) { port, _, _ in
                let stream = try await streamChat(port: port, body: chatJSON("list employees"), headers: [("authorization", "Bearer \(hrLiteKey)")])
                #expect(stream.types.last == "complete")
                let offered = (mock.received.first?.body["tools"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
                #expect(offered == ["get_departments"])
                let second = try #require(mock.received.last?.body["messages"] as? [[String: Any]])
                let result = try #require((second.last?["content"] as? [[String: Any]])?.first)
                #expect(result["is_error"] as? Bool == true, "get_employees did not run for this key")
            }
        }
        let file = try TemporaryRules(accessKeys("""
              - id: typo
                sha256: \(digestHex("sb_typo-key-0123456789abcdef0123"))
                tools: [get_departments, get_employes]
            """))
        defer { file.remove() }
        var config = configuration(rules: nil)
        config.apiKeysPath = file.path
        do {
            _ = try await buildApplication(configuration: config)
            Issue.record("a keys file naming an unknown tool was accepted")
        } catch {
            let text = "\(error)"
            #expect(text.contains("\(file.path):"), "\(text)")
            #expect(text.contains("unknown tool \"get_employes\""), "\(text)")
        }
    }

    @Test("the server's own key ids (env-N, anonymous) and duplicate ids are refused in a keys file")
    func reservedIds() {
        for id in ["env-1", "env-12", "anonymous"] {
            let yaml = "version: 1\nkeys:\n  - { id: \(id), sha256: \(digestHex("sb_x-\(id)-0123456789abcdef")) }\n"
            let (keys, diagnostics) = APIKeysFile.load(yaml: yaml, path: "keys.yaml")
            #expect(keys == nil)
            #expect(diagnostics.first?.description.hasPrefix("keys.yaml:3:") == true, "\(diagnostics)")
        }
        let twice = "version: 1\nkeys:\n  - { id: a, sha256: \(digestHex("sb_one-0123456789abcdef")) }\n"
            + "  - { id: a, sha256: \(digestHex("sb_two-0123456789abcdef")) }\n"
        #expect(APIKeysFile.load(yaml: twice, path: "keys.yaml").keys == nil)
        #expect(APIKeysFile.load(yaml: "version: 1\nkeys:\n  - { id: env-x, sha256: \(digestHex("sb_3")) }\n", path: "k").keys != nil)
    }

    @Test("refused work costs nothing: a key over its requests per minute is refused before its chat is analysed")
    func refusedBeforeAnalysis() async throws {
        try await withServer(keys: keysYAML(webLimits: "{ requests_per_minute: 1 }")) { port, _, metrics in
            func analyses() -> Int {
                let text = String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
                return text.split(separator: "\n").filter { $0.hasPrefix("switchboard_analyses_total{") }
                    .compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +)
            }
            var statuses: [UInt] = []
            for _ in 0..<4 {
                statuses.append(try await request(port, "/mcp/chat", key: webKey, body: chatJSON("make a pie chart of staff")).status)
            }
            #expect(statuses == [200, 429, 429, 429])
            #expect(analyses() == 1)
        }
    }

    @Test("every token a model produced is charged: a client that hangs up after three chunks, every time, runs out of budget")
    func hangUpsAreCharged() async throws {
        try await MockAnthropic.run { mock in
            for _ in 0..<6 { mock.enqueue(threeChunksThenAPause) }
            try await withServer(mock, keys: accessKeys()) { port, _, metrics in
                var refusedOnTry: Int?
                for attempt in 1...6 {
                    let response = try await postChat(port: port, body: chatJSON("tell me"), headers: [("authorization", "Bearer \(stingyKey)")])
                    if response.status == .tooManyRequests {
                        let body = try await response.body.collect(upTo: 1 << 16)
                        #expect(String(buffer: body).contains("budget_exhausted"))
                        refusedOnTry = attempt
                        break
                    }
                    let stream = try await receiveStream(response) { $0.types.filter { $0 == "text_chunk" }.count >= 3 }
                    #expect(stream.types.filter { $0 == "text_chunk" }.count == 3)
                    // The hang-up is booked by the server once it notices; give it the moment it takes.
                    #expect(await eventually {
                        String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
                            .contains(#"switchboard_key_tokens_total{key="stingy",direction="output"} \#(6 * attempt)"#)
                    })
                }
                #expect(refusedOnTry == 3, "10 tokens a day, 6 charged per cut try: the third is refused")
            }
        }
    }
}

extension SecurityTests {
    @Test("no upstream text reaches a client unfiltered: 400, 401 and 500 bodies with an IP, a key and an internal URL", arguments: [
        (400, "invalid_request_error", "upstream_rejected"), (401, "authentication_error", "upstream_auth"), (500, "api_error", "upstream_error"),
    ])
    func upstreamTextFiltered(status: Int, type: String, code: String) async throws {
        let secrets = ["10.20.30.40", "sk-live-abcdef0123456789", "http://billing.internal:8080/v1/keys", "Bearer tok_987654321"]
        let message = "prompt is too long; see \(secrets[2]) from \(secrets[0]) with \(secrets[1]) (\(secrets[3]))"
        try await MockAnthropic.run { mock in
            mock.enqueue(.status(status, body: SSE.errorBody(type, message)), .status(status, body: SSE.errorBody(type, message)),
                         .status(status, body: SSE.errorBody(type, message)), .status(status, body: SSE.errorBody(type, message)))
            let log = CapturedLog()
            try await withServer(mock, log: log) { port, _, _ in
                let stream = try await streamChat(port: port, body: chatJSON("hi"), headers: [("authorization", "Bearer \(adminKey)")])
                let error = try #require(stream.events("error").first)
                #expect(error["code"] as? String == code)
                let everything = stream.arrivals.map { "\($0.json)" }.joined()
                for secret in secrets { #expect(!everything.contains(secret), "\(secret) reached the client") }
                if status == 400 {
                    #expect((error["message"] as? String)?.contains("the conversation is longer than the model accepts") == true,
                            "the reason, in our words")
                }
                #expect(await eventually { log.text.contains("the model service refused or failed") })
                for secret in secrets { #expect(!log.text.contains(secret), "\(secret) reached the log") }
            }
        }
    }
}

extension SecurityTests {
    @Test("an emergency lockout: a key listed under revoked: is refused within a second on a running server; a deleted keys file keeps the last good keys")
    func revokedWithinASecond() async throws {
        try await withServer(keys: keysYAML()) { port, file, _ in
            #expect(try await request(port, "/mcp/chat/analyze", key: webKey).status == 200)
            try Data((keysYAML() + "\nrevoked: [web]\n").utf8).write(to: URL(fileURLWithPath: file.path))
            let clock = ContinuousClock()
            let started = clock.now
            #expect(await eventually(within: .seconds(1)) { (try? await request(port, "/mcp/chat/analyze", key: webKey).status) == 401 })
            #expect(clock.now - started < .seconds(1))
            #expect(try await request(port, "/mcp/chat/analyze", key: adminKey).status == 200, "other keys go on")
            try FileManager.default.removeItem(atPath: file.path)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await request(port, "/mcp/chat/analyze", key: adminKey).status == 200, "the last good keys keep working")
            #expect(try await request(port, "/mcp/chat/analyze", key: webKey).status == 401, "and the revoked one stays out")
        }
    }
}

extension SecurityTests {
    @Test("a reload that changes where a provider's key is sent is logged at warning; one whose key variable is unset is refused, as at start")
    func providerReloads() throws {
        func rules(_ url: String, key: String) -> String {
            """
            version: 1
            providers:
              local: { kind: openai, base_url: "\(url)", api_key_env: \(key) }
            levels:
              - { name: simple, route: fast, estimated_seconds: 3 }
            routes:
              fast: { action: stream, provider: local, model: m }
            """
        }
        let first = rules("https://models.example.com/v1", key: "HOME")
        let outcome = RuleSetLoader.load(yaml: first, path: "rules.yaml", fingerprint: "one", environment: ["HOME"])
        // Whoever starts the process lets providers read HOME and one variable that is not set.
        let environment = ["HOME": "/root", ProviderKeyVariables.setting: "HOME,SURELY_UNSET_VARIABLE_42", "AWS_SECRET_ACCESS_KEY": "x"]
        let store = RulesStore(rules: try #require(outcome.accepted), source: .file("rules.yaml"), environment: environment)
        let log = CapturedLog()
        #expect(store.reload(yaml: rules("https://models.example.com/v1", key: "HOME"), fingerprint: "same", path: "rules.yaml",
                             logger: log.logger()) == .reloaded)
        #expect(!log.text.contains("where a provider's key is sent"), "nothing changed for the provider")
        #expect(store.reload(yaml: rules("https://other.example.net/v1", key: "HOME"), fingerprint: "two", path: "rules.yaml",
                             logger: log.logger()) == .reloaded)
        #expect(log.text.contains("warning a reload changed where a provider's key is sent"))
        #expect(log.text.contains("other.example.net"))
        #expect(store.reload(yaml: rules("https://other.example.net/v1", key: "SURELY_UNSET_VARIABLE_42"), fingerprint: "three",
                             path: "rules.yaml", logger: log.logger()) == .rejected)
        #expect(store.active.rules.fingerprint == "two")
        // A variable that is set but not allowed is refused with its place in the file, and the rules stay.
        #expect(store.reload(yaml: rules("https://attacker.example/v1", key: "AWS_SECRET_ACCESS_KEY"), fingerprint: "four",
                             path: "rules.yaml", logger: log.logger()) == .rejected)
        #expect(log.text.contains("rules.yaml:3:80: error: provider \"local\": api_key_env names AWS_SECRET_ACCESS_KEY, which this server "
                                  + "does not let providers read; whoever starts it allows that with SWITCHBOARD_PROVIDER_KEY_VARS="
                                  + "AWS_SECRET_ACCESS_KEY,HOME,SURELY_UNSET_VARIABLE_42"), "\(log.text)")
        #expect(store.active.rules.fingerprint == "two")
    }
}

extension SecurityTests {
    @Test("a provider that reports no usage still has its output charged to the key, by the estimate")
    func unreportedUsageCharged() async throws {
        try await MockAnthropic.run { mock in
            // The route's own provider answers, so its fallback is never used.
            let rules = try TemporaryRules(fallbackRulesYAML(mock))
            defer { rules.remove() }
            // Text, a stop, [DONE]: no usage chunk.
            mock.enqueue(.stream([OpenAIChunk.delta(#"{"role":"assistant","content":""}"#), OpenAIChunk.delta(#"{"content":"abcdefghijkl"}"#),
                                  OpenAIChunk.delta("{}", finish: "stop"), OpenAIChunk.done]))
            try await withServer(mock, configure: { $0.rulesPath = rules.path }) { port, _, metrics in
                let stream = try await streamChat(port: port, body: chatJSON("list the people"), path: "/mcp/chat",
                                                  headers: [("authorization", "Bearer \(adminKey)")])
                #expect(stream.types.last == "complete", "\(stream.types)")
                #expect(String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
                    .contains(#"switchboard_key_tokens_total{key="ops",direction="output"} 3"#), "12 bytes, 3 tokens by the estimate")
            }
        }
    }
}

/// A model type for a router built without a model.
private struct MockModelForAccess: LanguageModel {
    func streamTurn(_ request: ModelRequest, into sink: some EventSink<ModelStreamEvent>) async throws -> ModelTurn {
        throw CancellationError()
    }
}
