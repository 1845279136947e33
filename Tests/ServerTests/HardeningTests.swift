import AnthropicMock
import ChatCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing
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
