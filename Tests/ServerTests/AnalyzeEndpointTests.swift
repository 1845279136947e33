import Foundation
import Hummingbird
import HummingbirdTesting
import TestSupport
import Testing
@testable import Server

@Suite("POST /mcp/chat/analyze")
struct AnalyzeEndpointTests {
    @Test("answers with the routing advice and its reasons")
    func advice() async throws {
        let rules = try TemporaryRules(chartRules(weight: 4))
        defer { rules.remove() }
        let app = try await buildApplication(configuration: configuration(rules: rules.path))
        try await app.test(.router) { client in
            try await client.execute(uri: "/mcp/chat/analyze", method: .post, headers: jsonHeaders,
                                     body: chatBody("Chart the salaries and compare them")) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json; charset=utf-8")
                let body = try json(response.body)
                #expect(body["complexity"] as? String == "complex")
                #expect(body["score"] as? Int == 5)
                #expect(body["route"] as? String == "desktop")
                #expect(body["action"] as? String == "advise")
                #expect(body["model"] is NSNull)
                #expect(body["estimatedSeconds"] as? Int == 25)
                #expect(body["message"] as? String == "Use the desktop client.")
                #expect((body["rulesVersion"] as? String)?.hasPrefix("sha256:") == true)
                #expect(body["analysisMicros"] is Int)
                let matched = try #require(body["matchedRules"] as? [[String: Any]])
                #expect(matched.map { $0["id"] as? String } == ["charts", "compare"])
                // Every documented key is there: a rule without a route or description says null.
                #expect(matched.allSatisfy { $0["route"] is NSNull && $0.keys.contains("description") })
                let spans = try #require(matched.first?["matches"] as? [[String: Any]])
                #expect(spans.count == 1)
                #expect(spans.first?["text"] as? String == "Chart")
                #expect(spans.first?["start"] as? Int == 0)
                #expect(spans.first?["end"] as? Int == 5)
                #expect(spans.first?["messageIndex"] as? Int == 0)
            }
            try await client.execute(uri: "/mcp/chat/analyze", method: .post, headers: jsonHeaders, body: chatBody("list the employees")) { response in
                let body = try json(response.body)
                #expect(body["complexity"] as? String == "simple")
                #expect(body["action"] as? String == "stream")
                #expect(body["model"] as? String == "claude-haiku-4-5")
                #expect(body["maxIterations"] as? Int == 3)
                #expect((body["matchedRules"] as? [Any])?.isEmpty == true)
            }
        }
    }

    @Test("text comes from string content or text blocks of the last user turn")
    func contentBlocks() async throws {
        let rules = try TemporaryRules(chartRules(weight: 4))
        defer { rules.remove() }
        let app = try await buildApplication(configuration: configuration(rules: rules.path))
        let body = #"""
            {"messages":[
              {"role":"user","content":"compare"},
              {"role":"assistant","content":[{"type":"text","text":"a chart?"}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"x"},{"type":"text","text":"yes"},{"type":"text","text":"a graph"}]}
            ]}
            """#
        try await app.test(.router) { client in
            try await client.execute(uri: "/mcp/chat/analyze", method: .post, headers: jsonHeaders, body: ByteBuffer(string: body)) { response in
                let body = try json(response.body)
                let matched = try #require(body["matchedRules"] as? [[String: Any]])
                #expect(matched.map { $0["id"] as? String } == ["charts"])
                let span = try #require((matched.first?["matches"] as? [[String: Any]])?.first)
                #expect(span["text"] as? String == "graph")
                #expect(span["start"] as? Int == 6)
                #expect(span["messageIndex"] as? Int == 2)
            }
        }
    }

    @Test("bad input gets a 4xx naming the field", arguments: [
        ("{", 400, "body"),
        ("[]", 400, "body"),
        ("{}", 400, "messages"),
        (#"{"messages":"hi"}"#, 400, "messages"),
        (#"{"messages":[]}"#, 400, "messages"),
        (#"{"messages":[{"content":"hi"}]}"#, 400, "messages[0].role"),
        (#"{"messages":[{"role":"user","content":"a"},{"role":"robot","content":"hi"}]}"#, 400, "messages[1].role"),
        (#"{"messages":[{"role":"user"}]}"#, 400, "messages[0].content"),
        (#"{"messages":[{"role":"user","content":42}]}"#, 400, "messages[0].content"),
        (#"{"messages":[{"role":"user","content":[{"text":"x"}]}]}"#, 400, "messages[0].content[0].type"),
        (#"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#, 400, "messages[0].content[0].text"),
        (#"{"messages":[{"role":"assistant","content":"only me"}]}"#, 400, "messages"),
        (#"{"messages":[{"role":"user","content":""}]}"#, 400, "messages"),
        (#"{"messages":[{"role":"user","content":"hi"}],"maxTokens":0}"#, 400, "maxTokens"),
        (#"{"messages":[{"role":"user","content":"hi"}],"system":7}"#, 400, "system"),
    ])
    func badInput(body: String, status: Int, field: String) async throws {
        let rules = try TemporaryRules(chartRules(weight: 4))
        defer { rules.remove() }
        let app = try await buildApplication(configuration: configuration(rules: rules.path))
        try await app.test(.router) { client in
            try await client.execute(uri: "/mcp/chat/analyze", method: .post, headers: jsonHeaders, body: ByteBuffer(string: body)) { response in
                #expect(response.status.code == status)
                let error = try #require(try json(response.body)["error"] as? [String: Any])
                #expect(error["field"] as? String == field)
                #expect(error["code"] as? String == "invalid_request")
                #expect((error["message"] as? String)?.isEmpty == false)
            }
        }
    }

    @Test("a body over the limit is refused with 413")
    func bodyLimit() async throws {
        let rules = try TemporaryRules(chartRules(weight: 4))
        defer { rules.remove() }
        let app = try await buildApplication(configuration: configuration(rules: rules.path, maxBodyBytes: 100))
        try await app.test(.router) { client in
            try await client.execute(uri: "/mcp/chat/analyze", method: .post, headers: jsonHeaders,
                                     body: chatBody(String(repeating: "word ", count: 50))) { response in
                #expect(response.status == .contentTooLarge)
                let error = try #require(try json(response.body)["error"] as? [String: Any])
                #expect(error["code"] as? String == "body_too_large")
                #expect(error["field"] as? String == "body")
            }
            try await client.execute(uri: "/mcp/chat/analyze", method: .post, headers: jsonHeaders, body: chatBody("a chart")) { response in
                #expect(response.status == .ok)
            }
        }
    }

    @Test("GET /rules shows what is in service")
    func rulesStatus() async throws {
        let rules = try TemporaryRules(chartRules(weight: 4))
        defer { rules.remove() }
        let app = try await buildApplication(configuration: configuration(rules: rules.path))
        try await app.test(.router) { client in
            try await client.execute(uri: "/rules", method: .get) { response in
                let body = try json(response.body)
                #expect(body["path"] as? String == rules.path)
                #expect(body["source"] as? String == "file")
                #expect(body["levelCount"] as? Int == 2)
                #expect(body["ruleCount"] as? Int == 2)
                #expect((body["version"] as? String)?.hasPrefix("sha256:") == true)
                #expect((body["loadedAt"] as? String)?.hasSuffix("Z") == true)
                #expect(body["lastReloadError"] is NSNull)
            }
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
            }
        }
    }

    @Test("an invalid rules file stops the server from starting, with its diagnostics")
    func invalidAtStart() async throws {
        let rules = try TemporaryRules("version: 1\nlevels: []\nroutes: {}\nrules: []\n")
        defer { rules.remove() }
        await #expect {
            _ = try await buildApplication(configuration: configuration(rules: rules.path))
        } throws: { error in
            "\(error)".contains("\(rules.path):2:9: error: \"levels\" is empty")
        }
    }

    @Test("Docs/API.md's error table lists exactly the API error codes")
    func errorCodesDocumented() throws {
        let documented = try ProjectDocs.tableColumn("API.md", after: "## Errors", column: 1)
        #expect(documented == APIErrorCode.allCases.map(\.rawValue))
    }
}
