import ChatCore
import Foundation
import Logging
import Routing
import Synchronization
import Upstream

/// The model clients of the rules file's providers, made on first use and kept (one connection pool each) until
/// the server stops; a provider edited in the rules gets a new client, the old one stays until then. The key is
/// read from the provider's `api_key_env` when its client is made, and never stored anywhere else.
public final class ProviderModels: Sendable {
    /// Timeouts and retries every provider shares (the server's upstream settings).
    private let timeouts: UpstreamTimeouts
    private let retry: RetryPolicy
    private let maxConnections: Int
    /// Whether model call spans carry the messages (`ServerConfiguration.captureContent`).
    private let captureContent: Bool
    /// Certificate authorities trusted for `https` providers besides the system's (`UpstreamSettings.caFile`).
    private let caFile: String?
    private let environment: @Sendable (String) -> String?
    private let logger: Logger
    private let clients = Mutex<[Connection: Client]>([:])
    /// Which providers keep failing, shared by every route's fallbacks (and shown by `/health`).
    public let breaker = CircuitBreaker()

    /// The most clients kept; past it, the oldest edits' clients would pile up, so a new provider is refused.
    static let maxClients = 64

    /// What a client is made from: editing a provider's prices keeps its client (and connections).
    private struct Connection: Hashable {
        let name: String
        let kind: Provider.Kind
        let baseURL: String?
        let apiKeyEnv: String?
        let maxTokensField: String?
        let promptCache: Bool

        init(_ provider: Provider) {
            name = provider.name
            kind = provider.kind
            baseURL = provider.baseURL
            apiKeyEnv = provider.apiKeyEnv
            maxTokensField = provider.maxTokensField
            promptCache = provider.promptCache
        }
    }

    private enum Client: Sendable {
        case anthropic(AnthropicClient)
        case openai(OpenAIClient)

        var model: any LanguageModel {
            switch self {
            case .anthropic(let client): client
            case .openai(let client): client
            }
        }

        func shutdown() async throws {
            switch self {
            case .anthropic(let client): try await client.shutdown()
            case .openai(let client): try await client.shutdown()
            }
        }
    }

    public init(timeouts: UpstreamTimeouts = UpstreamTimeouts(), retry: RetryPolicy = RetryPolicy(), maxConnections: Int = 1024,
                captureContent: Bool = false, caFile: String? = nil,
                environment: @escaping @Sendable (String) -> String? = { ProcessInfo.processInfo.environment[$0] },
                logger: Logger = Logger(label: "switchboard.providers")) {
        self.timeouts = timeouts
        self.retry = retry
        self.maxConnections = maxConnections
        self.captureContent = captureContent
        self.caFile = caFile
        self.environment = environment
        self.logger = logger
    }

    /// The model of `provider`; an error naming the variable when its key is not set (any more).
    func model(for provider: Provider) throws(APIError) -> any LanguageModel {
        let key = provider.apiKeyEnv.flatMap(environment)
        if let variable = provider.apiKeyEnv, key == nil {
            throw APIError(.serviceUnavailable, code: .notConfigured,
                           message: "the provider \(provider.name) needs its key in \(variable), which is not set")
        }
        return try clients.withLock { clients throws(APIError) -> any LanguageModel in
            if let client = clients[Connection(provider)] { return client.model }
            guard clients.count < Self.maxClients else {
                throw APIError(.serviceUnavailable, code: .notConfigured,
                               message: "too many providers were configured since the server started; restart it")
            }
            let client: Client
            switch provider.kind {
            case .anthropic:
                var configuration = AnthropicConfiguration(apiKey: key ?? "", baseURL: provider.baseURL ?? "https://api.anthropic.com")
                configuration.timeouts = timeouts
                configuration.retry = retry
                configuration.maxConnections = maxConnections
                configuration.captureContent = captureContent
                configuration.caFile = caFile
                configuration.promptCache = provider.promptCache
                client = .anthropic(AnthropicClient(configuration: configuration, logger: logger))
            case .openai:
                var configuration = OpenAIConfiguration(baseURL: provider.baseURL ?? "", apiKey: key)
                configuration.maxTokensField = provider.maxTokensField ?? "max_tokens"
                configuration.timeouts = timeouts
                configuration.retry = retry
                configuration.maxConnections = maxConnections
                configuration.captureContent = captureContent
                configuration.caFile = caFile
                client = .openai(OpenAIClient(configuration: configuration, logger: logger))
            }
            clients[Connection(provider)] = client
            logger.info("provider client made", metadata: [
                "provider": "\(provider.name)", "kind": "\(provider.kind.rawValue)",
                "url": "\(Redaction.credentials(in: provider.baseURL ?? "default"))",
            ])
            return client.model
        }
    }

    /// Closes every client's connection pool; once, when the server stops.
    public func shutdown() async {
        let all = clients.withLock { clients in
            defer { clients.removeAll() }
            return Array(clients.values)
        }
        for client in all { try? await client.shutdown() }
    }
}
