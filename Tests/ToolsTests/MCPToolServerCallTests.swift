import ChatCore
import Foundation
import Testing
@testable import Tools

@Suite("switchboard mcp's calls")
struct MCPToolServerCallTests {
    private struct Stuck: ChatCore.Tool {
        let definition = ToolDefinition(name: "stuck", description: "", inputSchema: ["type": "object"])
        func execute(_ input: JSONValue) async throws -> ToolOutput {
            try await Task.sleep(for: .seconds(60))
            return ToolOutput(content: "never")
        }
    }

    @Test("a call past the tool timeout is cancelled and answered as an error")
    func timeout() async throws {
        let output = try await MCPToolServer.run(Stuck(), [:], timeout: .milliseconds(50))
        #expect(output.isError)
        #expect(output.content == "The tool stuck timed out after 50 ms.")
    }
}
