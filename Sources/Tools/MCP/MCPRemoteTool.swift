import ChatCore

/// A tool provided by an MCP server, run like a built-in.
struct MCPRemoteTool: ChatCore.Tool {
    let definition: ToolDefinition
    let connection: MCPServerConnection

    func execute(_ input: JSONValue) async throws -> ToolOutput {
        try await connection.call(definition.name, input)
    }
}
