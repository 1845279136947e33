import Foundation

/// MCP servers to take tools from, in the format desktop MCP clients use:
/// `{"mcpServers": {"files": {"command": "npx", "args": […], "env": {…}}, "web": {"url": "http://…/mcp"}}}`.
public struct MCPConfiguration: Sendable, Decodable {
    public struct ServerSpec: Sendable, Decodable {
        public var command: String?
        public var args: [String]?
        public var env: [String: String]?
        public var url: String?
        /// Extra HTTP headers for a `url` server (for example an `Authorization` token).
        public var headers: [String: String]?

        public init(command: String? = nil, args: [String]? = nil, env: [String: String]? = nil,
                    url: String? = nil, headers: [String: String]? = nil) {
            self.command = command
            self.args = args
            self.env = env
            self.url = url
            self.headers = headers
        }
    }

    public var mcpServers: [String: ServerSpec]

    public static func load(path: String) throws -> MCPConfiguration {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            let configuration = try JSONDecoder().decode(MCPConfiguration.self, from: data)
            for (name, spec) in configuration.mcpServers where (spec.command == nil) == (spec.url == nil) {
                throw ToolError("\(path): server \"\(name)\" needs either \"command\" (stdio) or \"url\" (Streamable HTTP)")
            }
            return configuration
        } catch let error as DecodingError {
            throw ToolError("\(path): not a valid MCP configuration: \(error)")
        }
    }
}
