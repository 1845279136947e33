import ChatCore
import Logging
import MCP

/// Serves a tool box over MCP, so desktop MCP clients use exactly the tools the web stream uses.
public enum MCPToolServer {
    /// Serves on standard input and output until the client disconnects. Logs must go to standard error.
    /// A call that runs past `toolTimeout` is cancelled and answered as an error.
    public static func serveStdio(_ tools: ToolBox, version: String, toolTimeout: Duration = .seconds(30),
                                  logger: Logger) async throws {
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
            let output = try await run(tool, input, timeout: toolTimeout)
            return .init(content: [.text(output.content)], isError: output.isError)
        }
        try await server.start(transport: StdioTransport(logger: logger))
        await server.waitUntilCompleted()
    }

    /// Runs one call within `timeout`; past it, an error result saying so.
    static func run(_ tool: any ChatCore.Tool, _ input: JSONValue, timeout: Duration) async throws -> ToolOutput {
        guard let output = try await withTimeout(timeout, { try await tool.execute(input) }) else {
            return ToolOutput(content: "The tool \(tool.definition.name) timed out after \(timeout.inMilliseconds) ms.", isError: true)
        }
        return output
    }
}
