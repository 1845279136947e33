import ChatCore
import Foundation
import Logging
import Routing
import ConfigFiles
import ServiceLifecycle
import Storage
import Tools
import Upstream

// The steps of `buildApplication`, each refusing the start with a sentence that says what to fix.

/// The rules in service at start: the file (or the built-in copy); a file with errors refuses the start with
/// every diagnostic.
func loadRules(_ configuration: ServerConfiguration, metrics: ServerMetrics, logger: Logger) throws -> RulesStore {
    let source = RulesSource.resolve(explicitPath: configuration.rulesPath)
    let outcome = RulesFile.load(source)
    guard let rules = outcome.accepted else {
        throw StartupError(description: "cannot start: the rules are invalid\n"
                           + outcome.diagnostics.map(\.description).joined(separator: "\n"))
    }
    for warning in outcome.diagnostics { logger.warning("\(warning)") }
    logger.info("rules loaded", metadata: ["path": "\(source.path)", "version": "\(rules.fingerprint)",
                                           "rules": "\(rules.rules.count)", "levels": "\(rules.levels.count)"])
    return RulesStore(rules: rules, source: source, warnings: outcome.diagnostics, metrics: metrics,
                      shadow: try loadShadowRules(configuration, logger: logger))
}

/// The candidate rules of `--shadow-rules`, checked as the rules are: an invalid file refuses the start.
func loadShadowRules(_ configuration: ServerConfiguration, logger: Logger) throws -> ShadowRules? {
    guard let path = configuration.shadowRulesPath else { return nil }
    let outcome = RulesFile.load(.file(path))
    guard let rules = outcome.accepted else {
        throw StartupError(description: "cannot start: the shadow rules are invalid\n"
                           + outcome.diagnostics.map(\.description).joined(separator: "\n"))
    }
    logger.info("shadow rules loaded: analysed beside the rules, never routing", metadata: ["path": "\(path)", "version": "\(rules.fingerprint)"])
    return ShadowRules(rules: rules, path: path)
}

/// On PostgreSQL the quotas are shared with every instance on the same database (a service of its own); else
/// they are this instance's, in memory.
func quotaStore(_ configuration: ServerConfiguration, database: any SQLDatabase, services: inout [any Service],
                logger: Logger) -> any QuotaStore {
    guard case .postgres = configuration.database else { return InMemoryQuotaStore() }
    var settings = PostgresQuotaStore.Settings()
    settings.lease = configuration.quotaLease
    settings.timeout = configuration.quotaTimeout
    let shared = PostgresQuotaStore(database: database, instance: configuration.instanceID, settings: settings, logger: logger)
    services.append(shared)
    return shared
}

/// The MCP servers of `--mcp-config`, started, their tools registered; one that cannot be reached refuses the
/// start, naming it.
func startMCPServers(_ configuration: ServerConfiguration, registry: inout ToolRegistry, services: inout [any Service],
                     logger: Logger) async throws -> [MCPServerConnection] {
    guard let path = configuration.mcpConfigPath else { return [] }
    let mcp: MCPConfiguration
    do {
        mcp = try MCPConfiguration.load(path: path)
    } catch {
        throw StartupError(description: "cannot start: the MCP configuration \(path) cannot be read: \(error)")
    }
    var connections: [MCPServerConnection] = []
    for (name, spec) in mcp.mcpServers.sorted(by: { $0.key < $1.key }) {
        let connection = MCPServerConnection(name: name, spec: spec, logger: logger)
        let remote: [any Tool]
        do {
            remote = try await connection.start()
        } catch {
            throw StartupError(description: "cannot start: the MCP server \"\(name)\" from \(path) cannot be reached: \(error)")
        }
        for clash in registry.register(remote, source: "MCP server \"\(name)\"") { logger.warning("\(clash)") }
        services.append(connection)
        connections.append(connection)
    }
    return connections
}

/// `--cors-origins '*'` needs keys: without, any website could read the HR data through its visitors' browsers.
func checkCORS(_ configuration: ServerConfiguration, hasKeys: Bool) throws {
    guard !hasKeys, configuration.cors == .anyOrigin else { return }
    throw StartupError(description: """
        cannot start: --cors-origins '*' without API keys would let any website read the HR data and spend the model \
        key through its visitors' browsers. Name the frontends' origins (--cors-origins https://app.example.com), or \
        give keys (--api-keys FILE).
        """)
}

/// The model clients: the rules file's providers (made on their first chat, sharing the server's upstream
/// settings and retries) and the built-in Anthropic client when `ANTHROPIC_API_KEY` is set; each pool is closed
/// when the server stops.
func modelClients(_ configuration: ServerConfiguration, toolCount: Int, services: inout [any Service], logger: Logger)
    -> (ProviderModels, AnthropicClient?) {
    let providers = ProviderModels(timeouts: configuration.anthropic?.timeouts ?? configuration.upstream.timeouts,
                                   retry: configuration.anthropic?.retry ?? RetryPolicy(),
                                   maxConnections: configuration.anthropic?.maxConnections ?? configuration.upstream.maxConnections,
                                   captureContent: configuration.captureContent, caFile: configuration.upstream.caFile, logger: logger)
    services.append(ShutdownService(name: "provider clients") { await providers.shutdown() })
    guard let anthropic = configuration.anthropic else {
        logger.warning("ANTHROPIC_API_KEY is not set: POST /mcp/chat/stream answers 503 until it is")
        return (providers, nil)
    }
    let client = AnthropicClient(configuration: anthropic, logger: logger)
    services.append(ShutdownService(name: "upstream client") { try await client.shutdown() })
    logger.info("streaming enabled", metadata: ["upstream": "\(Redaction.credentials(in: anthropic.baseURL))", "tools": "\(toolCount)"])
    return (providers, client)
}
