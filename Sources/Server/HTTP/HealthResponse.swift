/// The body of `GET /health`.
struct HealthResponse: Encodable {
    /// Liveness: the server answers either way; degraded while a part of it is being restored.
    enum Status: String, Encodable {
        case ok
        /// An MCP server is being reconnected, or a provider cools down.
        case degraded
    }

    /// An MCP server's connection.
    enum MCPServerState: String, Encodable {
        case connected
        case reconnecting
    }

    let status: Status
    let mcpServers: [String: MCPServerState]?
    /// Providers skipped by fallbacks for now, after failing again and again.
    let providersCoolingDown: [String]?

    init(mcpServers: [String: MCPServerState], providersCoolingDown: [String]) {
        status = mcpServers.values.contains(.reconnecting) || !providersCoolingDown.isEmpty ? .degraded : .ok
        self.mcpServers = mcpServers.isEmpty ? nil : mcpServers
        self.providersCoolingDown = providersCoolingDown.isEmpty ? nil : providersCoolingDown
    }
}
