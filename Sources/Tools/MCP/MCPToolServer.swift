import ChatCore
import Logging
import MCP

/// Serves a tool box over MCP, so desktop MCP clients use exactly the tools the web stream uses.
public enum MCPToolServer {
    /// Serves on standard input and output until the client disconnects. Logs must go to standard error.
    /// A call that runs past `toolTimeout` is cancelled and answered as an error.
    public static func serveStdio(_ tools: ToolBox, version: String, toolTimeout: Duration = .seconds(30),
                                  maxMessageBytes: Int = defaultMaxMessageBytes, logger: Logger) async throws {
        let server = Server(name: "switchboard", version: version, capabilities: .init(tools: .init(listChanged: false)))
        await server.withMethodHandler(ListTools.self) { _ in
            .init(tools: tools.definitions.map {
                MCP.Tool(name: $0.name, description: $0.description, inputSchema: $0.inputSchema.mcpValue)
            })
        }
        await server.withMethodHandler(CallTool.self) { params in
            guard let tool = tools[params.name] else {
                return .init(content: [.text(text: "Unknown tool \"\(params.name)\".", annotations: nil, _meta: nil)], isError: true)
            }
            let input = JSONValue.object((params.arguments ?? [:]).mapValues(JSONValue.init))
            let output = try await run(tool, input, timeout: toolTimeout)
            return .init(content: [.text(text: output.content, annotations: nil, _meta: nil)], isError: output.isError)
        }
        try await BoundedStdioTransport.withStandardIO(maxMessageBytes: maxMessageBytes, logger: logger) { transport in
            try await server.start(transport: transport)
            await server.waitUntilCompleted()
        }
    }

    /// The longest message (one line of JSON-RPC) read from a client: 4 MiB.
    public static let defaultMaxMessageBytes = 4 << 20

    /// Runs one call within `timeout`; past it, an error result saying so.
    static func run(_ tool: any ChatCore.Tool, _ input: JSONValue, timeout: Duration) async throws -> ToolOutput {
        guard let output = try await withTimeout(timeout, { try await tool.execute(input) }) else {
            return ToolOutput(content: "The tool \(tool.definition.name) timed out after \(timeout.inMilliseconds) ms.", isError: true)
        }
        return output
    }
}
