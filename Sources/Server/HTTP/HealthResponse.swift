/// The body of `GET /health`.
struct HealthResponse: Encodable {
    let status: String
    let mcpServers: [String: String]?
}
