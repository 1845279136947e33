import ChatCore
import OTelSemanticConventions
import Tracing

/// A tool provided by an MCP server, run like a built-in.
struct MCPRemoteTool: ChatCore.Tool {
    let definition: ToolDefinition
    let connection: MCPServerConnection

    /// The call is a client span, `tools/call {tool}` (the MCP conventions' name), under the loop's tool span; over
    /// HTTP its request carries the span's `traceparent`.
    func execute(_ input: JSONValue) async throws -> ToolOutput {
        try await withSpan("tools/call \(definition.name)", ofKind: .client) { span in
            if span.isRecording {
                span.updateAttributes { attributes in
                    attributes["mcp.method.name"] = "tools/call"
                    attributes[OTelAttribute.genAi.tool.name] = definition.name
                    attributes[OTelAttribute.genAi.operation.name] = "execute_tool"
                    attributes["switchboard.mcp.server"] = connection.name
                }
            }
            let output = try await connection.call(definition.name, input)
            if output.isError {
                span.attributes["error.type"] = "tool_error"
                span.setStatus(SpanStatus(code: .error))
            }
            return output
        }
    }
}
