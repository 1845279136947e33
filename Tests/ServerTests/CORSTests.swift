import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Server

@Suite("CORS")
struct CORSTests {
    private func withApp(_ policy: CORSPolicy, keys: [String] = [], _ body: @Sendable (any TestClientProtocol) async throws -> Void)
        async throws {
        var config = configuration(rules: nil)
        config.cors = policy
        config.apiKeys = keys
        let app = try await buildApplication(configuration: config)
        try await app.test(.router, body)
    }

    @Test("the policy is read from a comma-separated list, * or nothing")
    func parsing() {
        #expect(CORSPolicy("") == .off)
        #expect(CORSPolicy(" * ") == .anyOrigin)
        #expect(CORSPolicy("https://a.example, https://b.example,") == .origins(["https://a.example", "https://b.example"]))
    }

    @Test("a listed origin gets preflights answered, its answers marked and the routing headers exposed, errors included")
    func listedOrigin() async throws {
        try await withApp(.origins(["https://app.example"])) { client in
            try await client.execute(uri: "/mcp/chat", method: .options, headers: [
                .origin: "https://app.example", .accessControlRequestMethod: "POST", .accessControlRequestHeaders: "content-type",
            ]) { response in
                #expect(response.status == .noContent)
                #expect(response.headers[.accessControlAllowOrigin] == "https://app.example")
                #expect(response.headers[.accessControlAllowMethods] == "GET, POST, DELETE, OPTIONS", "the browser client cancels with DELETE")
                #expect(response.headers[.accessControlAllowHeaders] == "content-type")
                #expect(response.headers[.vary] == "Origin")
            }
            try await client.execute(uri: "/mcp/chat/analyze", method: .post, headers: [.origin: "https://app.example", .contentType: "application/json"],
                                     body: chatBody("chart it")) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.accessControlAllowOrigin] == "https://app.example")
                #expect(response.headers[.accessControlExposeHeaders]?.contains("X-Switchboard-Route") == true)
            }
            try await client.execute(uri: "/mcp/chat/analyze", method: .post, headers: [.origin: "https://app.example", .contentType: "application/json"],
                                     body: ByteBuffer(string: "{")) { response in
                #expect(response.status == .badRequest)
                #expect(response.headers[.accessControlAllowOrigin] == "https://app.example")
                #expect((try? json(response.body))?["error"] != nil)
            }
            // Another origin gets no CORS headers, so its browser refuses to hand over the answer.
            try await client.execute(uri: "/mcp/chat/analyze", method: .post, headers: [.origin: "https://evil.example", .contentType: "application/json"],
                                     body: chatBody("chart it")) { response in
                #expect(response.headers[.accessControlAllowOrigin] == nil)
            }
        }
    }

    @Test("* allows any origin (with keys: without, the server refuses to start); off (the default) adds nothing")
    func anyAndOff() async throws {
        await #expect {
            try await withApp(.anyOrigin) { _ in }
        } throws: { error in
            "\(error)".contains("--cors-origins '*' without API keys")
        }
        try await withApp(.anyOrigin, keys: ["sb_cors-test-key-0123456789"]) { client in
            try await client.execute(uri: "/health", method: .get, headers: [.origin: "https://x.example"]) { response in
                #expect(response.headers[.accessControlAllowOrigin] == "*")
                #expect(response.headers[.vary] == nil)
            }
        }
        try await withApp(.off) { client in
            try await client.execute(uri: "/health", method: .get, headers: [.origin: "https://x.example"]) { response in
                #expect(response.headers[.accessControlAllowOrigin] == nil)
            }
        }
    }
}
