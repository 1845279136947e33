import ServiceLifecycle

/// Runs `shutdown` when the server stops, for resources such as the upstream HTTP client.
struct ShutdownService: Service {
    let name: String
    let shutdown: @Sendable () async throws -> Void

    func run() async throws {
        try? await gracefulShutdown()
        try await shutdown()
    }
}
