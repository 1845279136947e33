import ChatCore
import Logging
import MCP

/// Serves a tool box over MCP, so desktop MCP clients use exactly the tools the web stream uses.
public enum MCPToolServer {
    /// Serves on standard input and output until the client disconnects. Logs must go to standard error.
    public static func serveStdio(_ tools: ToolBox, version: String, logger: Logger) async throws {
        let server = Server(name: "switchboard", version: version, capabilities: .init(tools: .init(listChanged: false)))
        await server.withMethodHandler(ListTools.self) { _ in
            .init(tools: tools.definitions.map {
                MCP.Tool(name: $0.name, description: $0.description, inputSchema: $0.inputSchema.mcpValue)
            })
        }
        await server.withMethodHandler(CallTool.self) { params in
            guard let tool = tools[params.name] else {
                return .init(content: [.text("Unknown tool \"\(params.name)\".")], isError: true)
            }
            let input = JSONValue.object((params.arguments ?? [:]).mapValues(JSONValue.init))
            let output = try await tool.execute(input)
            return .init(content: [.text(output.content)], isError: output.isError)
        }
        try await server.start(transport: StdioTransport(logger: logger))
        await server.waitUntilCompleted()
    }
}
