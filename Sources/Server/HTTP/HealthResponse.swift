/// The body of `GET /health`.
struct HealthResponse: Encodable {
    let status: String
    let mcpServers: [String: String]?
    /// Providers skipped by fallbacks for now, after failing again and again.
    let providersCoolingDown: [String]?
}
