import ChatCore
import ChatPipeline
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore
import Logging
import Routing
import ConfigFiles
import Dialects
import ServiceLifecycle
import Storage
import Tools
import Upstream

/// Builds the application the executable runs and the tests exercise.
public func buildApplication(configuration: ServerConfiguration, tools extraTools: [any Tool] = [], logger: Logger? = nil,
                             metrics: ServerMetrics = ServerMetrics(), readiness: Readiness = Readiness())
    async throws -> some ApplicationProtocol
{
    var logger = logger ?? Logger(label: "switchboard")
    logger.logLevel = configuration.logLevel
    let problems = configuration.problems
    guard problems.isEmpty else {
        throw StartupError(description: "cannot start: the configuration is invalid\n" + problems.map { "  - \($0)" }.joined(separator: "\n"))
    }

    let store = try loadRules(configuration, metrics: metrics, logger: logger)
    var services: [any Service] = []
    if case .file(let path) = store.active.source {
        services.append(RulesWatcher(path: path, store: store, interval: configuration.rulesPollInterval, logger: logger))
    }
    if let shadow = store.shadow {
        services.append(ShadowRulesWatcher(path: shadow.path, target: shadow, interval: configuration.rulesPollInterval, logger: logger))
    }
    let database: any SQLDatabase
    do {
        // The HR tools' tables, the finished streams', and on PostgreSQL the quotas several instances share.
        var schemas = [HRSchema.databaseSchema, StreamRecords.databaseSchema]
        if case .postgres = configuration.database { schemas.append(PostgresQuotaStore.databaseSchema) }
        let opened = try await PreparedDatabase.open(configuration.database, schemas: schemas, logger: logger)
        database = opened.database
        if let pool = opened.service { services.append(pool) }
    } catch {
        throw StartupError(description: "cannot start: the HR database at \(configuration.database) "
                           + "cannot be opened or prepared: \(error)")
    }
    let quotas = quotaStore(configuration, database: database, services: &services, logger: logger)
    var registry = ToolRegistry()
    for clash in registry.register(HRTools.all(database: database), source: "built-in") + registry.register(extraTools, source: "extra") {
        logger.warning("\(clash)")
    }
    let mcpServers = try await startMCPServers(configuration, registry: &registry, services: &services, logger: logger)
    let tools = ToolBox(registry.toolBox.tools.values.map { InstrumentedTool(wrapped: $0, metrics: metrics) })
    // A key's `tools` must name the server's tools, so the keys are read once the tools are known.
    let keys = try openAPIKeys(configuration, knownTools: Set(tools.tools.keys), logger: logger)
    try checkCORS(configuration, hasKeys: keys != nil)
    if let keys, let path = configuration.apiKeysPath {
        services.append(FileWatcher(path: path, target: keys, interval: configuration.rulesPollInterval, logger: logger))
    }

    // Finished streams are kept in the database for calibration, written in batches off the streams' path.
    let recorder = StreamRecorder(records: StreamRecords(database: database, limit: configuration.streamRecordsLimit), metrics: metrics,
                                  logger: logger)
    services.append(recorder)
    let (providers, model) = modelClients(configuration, toolCount: tools.definitions.count, services: &services, logger: logger)
    // The caller runs `readiness` as a service after the application (see `Serve`), so /ready says 503 the moment
    // SIGTERM or SIGINT arrives, before the server stops accepting and drains its streams.
    readiness.attach(database)
    let router = buildRouter(rules: store, configuration: configuration, model: model, tools: tools,
                             toolSources: registry.sources, mcpServers: mcpServers, keys: keys, quotas: quotas, readiness: readiness,
                             providers: providers, metrics: metrics, recorder: recorder, logger: logger)
    if let adminPort = configuration.adminPort {
        let operators = OperatorController(rules: store, tools: tools, toolSources: registry.sources, mcpServers: mcpServers,
                                           metrics: metrics, breaker: providers.breaker, recorder: recorder)
        services.append(try buildAdminApplication(configuration: configuration, port: adminPort, operators: operators, keys: keys,
                                                  quotas: quotas, logger: logger))
        logger.info("admin endpoints listening", metadata: ["address": "\(configuration.adminHost):\(adminPort)"])
    }
    // A connection that sends no complete request head, or stops sending its body, for `idleTimeout` is closed
    // (slow-loris); streams being answered are not idle. A client that stops reading is dropped after
    // `writeTimeout`. Connections beyond `maxConnections` wait to be accepted.
    return Application(
        router: router,
        server: .http1(configuration: .init(
            additionalChannelHandlers: [StreamConnectionHandler(writeTimeout: TimeAmount(configuration.writeTimeout))],
            idleTimeout: TimeAmount(configuration.idleTimeout))),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "switchboard",
                             availableConnectionsDelegate: MaximumAvailableConnections(configuration.maxConnections)),
        services: services,
        logger: logger
    )
}

/// The routes, in three groups whose middleware decides who may call them, by the route that matched (never by
/// how the path was spelled): public (the probes and the frontend kit), clients (the chat endpoints, any key) and
/// operators (an admin key). A route belongs to the group it is registered in; `AccessTests` checks that every
/// route the router has is public or a client's by name, or else refused to a non-admin key.
public func buildRouter<Model: LanguageModel>(
    rules store: RulesStore, configuration: ServerConfiguration, model: Model?, tools: ToolBox, toolSources: [String: String] = [:],
    mcpServers: [MCPServerConnection] = [], keys: APIKeyStore? = nil, quotas: any QuotaStore = InMemoryQuotaStore(),
    readiness: Readiness = Readiness(), providers: ProviderModels = ProviderModels(), metrics: ServerMetrics = ServerMetrics(),
    recorder: StreamRecorder? = nil, logger: Logger
) -> Router<SwitchboardRequestContext> {
    let router = Router(context: SwitchboardRequestContext.self)
    let instance = configuration.instanceID
    metrics.identify { (instance, store.active.rules.fingerprint, keys?.version) }
    if configuration.tracing {
        // The request's span, outermost, so every other span of the request is its child; the caller's
        // traceparent is honoured. No header is recorded (keys travel in them), nor a query's values; the status is
        // the one sent. The next middleware names the trace.
        router.add(middleware: ServerSpanMiddleware())
    }
    router.add(middleware: InstanceHeaderMiddleware(instance: instance))
    router.add(middleware: RequestMetricsMiddleware(metrics: metrics))
    if configuration.cors != .off { router.add(middleware: CORSMiddleware(policy: configuration.cors)) }
    router.add(middleware: MethodNotAllowedMiddleware())
    router.add(middleware: BrowserSafetyMiddleware(allowedHosts: configuration.effectiveAllowedHosts, cors: configuration.cors))
    let operators = OperatorController(rules: store, tools: tools, toolSources: toolSources, mcpServers: mcpServers, metrics: metrics,
                                       breaker: providers.breaker, recorder: recorder)

    // Public: no data and no spending in them, so no key.
    let open = router.group()
    FrontendAssets.add(to: open)
    operators.addProbes(to: open)
    open.get("/ready") { _, _ in
        let reasons = await readiness.reasons()
        return try Response.json(ReadinessResponse(status: reasons.isEmpty ? .ready : .notReady, reasons: reasons,
                                                   instance: configuration.instanceID, rulesVersion: store.active.rules.fingerprint,
                                                   keysVersion: keys?.version),
                                 status: reasons.isEmpty ? .ok : .serviceUnavailable)
    }

    func group(_ access: RouteAccess, dialect: Dialect? = nil) -> RouterGroup<SwitchboardRequestContext> {
        let group = router.group()
        // A compatible endpoint's refusals, the key check's included, are answered in its dialect.
        if let dialect { group.add(middleware: DialectErrorMiddleware(dialect: dialect)) }
        if let keys { group.add(middleware: AuthenticationMiddleware(access: access, keys: keys, quotas: quotas, metrics: metrics)) }
        return group
    }
    let chats = ChatController(rules: store, configuration: configuration, model: model, tools: tools, providers: providers,
                               metrics: metrics, gate: StreamGate(quotas: quotas, limits: configuration.limits, metrics: metrics, streams: keys?.streams),
                               sessions: ResumableSessions(limits: configuration.resume), recorder: recorder)
    chats.addRoutes(to: group(.client))
    CompatibleController(chats: chats, headWait: configuration.headWait)
        .addRoutes(openAI: group(.client, dialect: .openAI), anthropic: group(.client, dialect: .anthropic))
    operators.addRoutes(to: group(.admin))
    return router
}

/// The API keys of the keys file and of `SWITCHBOARD_API_KEYS`; `nil` when none are configured, which is allowed
/// on loopback (or with `--allow-unauthenticated`) only.
func openAPIKeys(_ configuration: ServerConfiguration, knownTools: Set<String>? = nil, logger: Logger) throws -> APIKeyStore? {
    let environmentKeys = APIKeyStore.environmentKeys(configuration.apiKeys)
    guard let path = configuration.apiKeysPath else {
        if !environmentKeys.isEmpty { return APIKeyStore(environmentKeys: environmentKeys) }
        guard configuration.isLoopback || configuration.allowUnauthenticated else {
            throw StartupError(description: """
                cannot start: refusing to listen on \(configuration.host) without API keys, where anyone who reaches the \
                port could spend the model key and read the HR data. Give keys (--api-keys FILE, SWITCHBOARD_API_KEYS_FILE \
                or SWITCHBOARD_API_KEYS; `switchboard keys new NAME` makes one), listen on 127.0.0.1, or pass \
                --allow-unauthenticated if something in front of the server checks every caller.
                """)
        }
        if !configuration.isLoopback {
            logger.warning("listening without API keys on a non-loopback address (--allow-unauthenticated)")
        }
        return nil
    }
    switch ConfigFile.read(path) {
    case .failure(let unreadable):
        throw StartupError(description: "cannot start: the API keys file cannot be read\n\(unreadable.diagnostic)")
    case .success(let file):
        let (keys, diagnostics) = APIKeysFile.load(yaml: file.text, path: path, knownTools: knownTools)
        guard let keys else {
            throw StartupError(description: "cannot start: the API keys file is invalid\n"
                               + diagnostics.map(\.description).joined(separator: "\n"))
        }
        logger.info("API keys loaded", metadata: ["path": "\(path)", "keys": "\(keys.keys.count + environmentKeys.count)"])
        return APIKeyStore(file: (keys, file.fingerprint), environmentKeys: environmentKeys, knownTools: knownTools)
    }
}

/// The admin listener of `--admin-port`: the operator's endpoints without keys, on loopback by default.
func buildAdminApplication(configuration: ServerConfiguration, port: Int, operators: OperatorController, keys: APIKeyStore?,
                           quotas: any QuotaStore, logger: Logger) throws -> some ApplicationProtocol {
    // Beyond loopback the admin port is guarded like the main one: an admin key, or an operator's explicit
    // --allow-unauthenticated (something in front checks every caller).
    if !configuration.isAdminLoopback, keys == nil, !configuration.allowUnauthenticated {
        throw StartupError(description: """
            cannot start: refusing to serve the admin port on \(configuration.adminHost) without API keys, where anyone who \
            reaches it could read the metrics, rules and tools. Keep --admin-host on loopback, give keys (the admin port \
            then needs an admin key), or pass --allow-unauthenticated if something in front checks every caller.
            """)
    }
    let router = Router(context: SwitchboardRequestContext.self)
    // A page that rebinds its name to 127.0.0.1 must not read these either; Prometheus scraping 127.0.0.1:PORT or
    // localhost:PORT is always answered, whatever --allowed-hosts says.
    var hosts = configuration
    hosts.host = configuration.adminHost
    let allowedHosts = hosts.effectiveAllowedHosts.union(ServerConfiguration.loopbackHostNames).union([configuration.adminHost.lowercased()])
    router.add(middleware: MethodNotAllowedMiddleware())
    router.add(middleware: BrowserSafetyMiddleware(allowedHosts: allowedHosts, cors: .off))
    operators.addProbes(to: router)
    let guarded = router.group()
    if !configuration.isAdminLoopback, let keys {
        guarded.add(middleware: AuthenticationMiddleware(access: .admin, keys: keys, quotas: quotas, metrics: operators.metrics))
    }
    operators.addRoutes(to: guarded)
    return Application(router: router, configuration: .init(address: .hostname(configuration.adminHost, port: port),
                                                             serverName: "switchboard-admin"), logger: logger)
}
