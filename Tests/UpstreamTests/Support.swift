@testable import Upstream

/// A client with a connection pool to close.
protocol PooledClient {
    func shutdown() async throws
}

extension AnthropicClient: PooledClient {}
extension OpenAIClient: PooledClient {}

/// Runs `body` with `client`, and shuts the client down after it, whatever happened.
func using<Client: PooledClient>(_ client: Client, _ body: (Client) async throws -> Void) async throws {
    do {
        try await body(client)
    } catch {
        try? await client.shutdown()
        throw error
    }
    try await client.shutdown()
}
