import ChatCore

/// The body of `GET /tools`: every tool the model can call, as the model sees it.
struct ToolListResponse: Encodable {
    struct Entry: Encodable {
        let name: String
        let description: String
        let inputSchema: JSONValue
        /// "built-in", or the MCP server it comes from.
        let source: String?
    }

    let tools: [Entry]

    init(tools: [ToolDefinition], sources: [String: String]) {
        self.tools = tools.map {
            Entry(name: $0.name, description: $0.description, inputSchema: $0.inputSchema, source: sources[$0.name])
        }
    }
}
