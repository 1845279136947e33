import ChatCore
import ChatPipeline
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore
import Logging
import Routing
import RulesFiles
import ServiceLifecycle
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

    let source = RulesSource.resolve(explicitPath: configuration.rulesPath)
    let outcome = RulesFile.load(source)
    guard let rules = outcome.accepted else {
        throw StartupError(description: "cannot start: the rules are invalid\n"
                           + outcome.diagnostics.map(\.description).joined(separator: "\n"))
    }
    for warning in outcome.diagnostics { logger.warning("\(warning)") }
    logger.info("rules loaded", metadata: ["path": "\(source.path)", "version": "\(rules.fingerprint)",
                                           "rules": "\(rules.rules.count)", "levels": "\(rules.levels.count)"])
    let store = RulesStore(rules: rules, source: source, warnings: outcome.diagnostics, metrics: metrics)

    var services: [any Service] = []
    if case .file(let path) = source {
        services.append(RulesWatcher(path: path, store: store, interval: configuration.rulesPollInterval, logger: logger))
    }
    let keys = try openAPIKeys(configuration, logger: logger)
    if let keys, let path = configuration.apiKeysPath {
        services.append(FileWatcher(path: path, target: keys, interval: configuration.rulesPollInterval, logger: logger))
    }
    let database: any SQLDatabase
    do {
        let opened = try await HRDatabase.open(configuration.database, logger: logger,
                                               preparePostgres: { try await PostgresQuotaStore.prepareSchema($0) })
        database = opened.database
        if let pool = opened.service { services.append(pool) }
    } catch {
        throw StartupError(description: "cannot start: the HR database at \(configuration.database) "
                           + "cannot be opened or prepared: \(error)")
    }
    // On PostgreSQL the quotas are shared with every instance on the same database; else they are this instance's.
    let quotas: any QuotaStore
    if case .postgres = configuration.database {
        var settings = PostgresQuotaStore.Settings()
        settings.lease = configuration.quotaLease
        let shared = PostgresQuotaStore(database: database, instance: configuration.instanceID, settings: settings, logger: logger)
        services.append(shared)
        quotas = shared
    } else {
        quotas = InMemoryQuotaStore()
    }
    var registry = ToolRegistry()
    for clash in registry.register(HRTools.all(database: database), source: "built-in") + registry.register(extraTools, source: "extra") {
        logger.warning("\(clash)")
    }
    var mcpServers: [MCPServerConnection] = []
    if let path = configuration.mcpConfigPath {
        let mcp: MCPConfiguration
        do {
            mcp = try MCPConfiguration.load(path: path)
        } catch {
            throw StartupError(description: "cannot start: the MCP configuration \(path) cannot be read: \(error)")
        }
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
            mcpServers.append(connection)
        }
    }
    let tools = ToolBox(registry.toolBox.tools.values.map { InstrumentedTool(wrapped: $0, metrics: metrics) })

    // Finished streams are kept in the database for calibration, written in batches off the streams' path.
    let recorder = StreamRecorder(records: StreamRecords(database: database, limit: configuration.streamRecordsLimit), metrics: metrics,
                                  logger: logger)
    services.append(recorder)
    // The rules file's providers share the server's upstream timeouts and retries.
    let providers = ProviderModels(timeouts: configuration.anthropic?.timeouts ?? UpstreamTimeouts(),
                                   retry: configuration.anthropic?.retry ?? RetryPolicy(), logger: logger)
    services.append(ShutdownService(name: "provider clients") { await providers.shutdown() })
    var model: AnthropicClient?
    if let anthropic = configuration.anthropic {
        let client = AnthropicClient(configuration: anthropic, logger: logger)
        services.append(ShutdownService(name: "upstream client") { try await client.shutdown() })
        model = client
        logger.info("streaming enabled", metadata: ["upstream": "\(Redaction.credentials(in: anthropic.baseURL))", "tools": "\(tools.definitions.count)"])
    } else {
        logger.warning("ANTHROPIC_API_KEY is not set: POST /mcp/chat/stream answers 503 until it is")
    }
    // The caller runs `readiness` as a service after the application (see `Serve`), so /ready says 503 the moment
    // SIGTERM or SIGINT arrives, before the server stops accepting and drains its streams.
    readiness.attach(database)
    let router = buildRouter(rules: store, configuration: configuration, model: model, tools: tools,
                             toolSources: registry.sources, mcpServers: mcpServers, keys: keys, quotas: quotas, readiness: readiness,
                             providers: providers, metrics: metrics, recorder: recorder, logger: logger)
    if let adminPort = configuration.adminPort {
        services.append(buildAdminApplication(configuration: configuration, port: adminPort, rules: store, tools: tools,
                                              toolSources: registry.sources, mcpServers: mcpServers, metrics: metrics,
                                              breaker: providers.breaker, recorder: recorder, logger: logger))
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

/// The routes: chat stream, smart-routed chat, analyze preflight, rules status, tools, health.
public func buildRouter<Model: LanguageModel>(
    rules store: RulesStore, configuration: ServerConfiguration, model: Model?, tools: ToolBox, toolSources: [String: String] = [:],
    mcpServers: [MCPServerConnection] = [], keys: APIKeyStore? = nil, quotas: any QuotaStore = InMemoryQuotaStore(),
    readiness: Readiness = Readiness(), providers: ProviderModels = ProviderModels(), metrics: ServerMetrics = ServerMetrics(),
    recorder: StreamRecorder? = nil, logger: Logger
) -> Router<SwitchboardRequestContext> {
    let router = Router(context: SwitchboardRequestContext.self)
    let instance = configuration.instanceID
    metrics.identify { (instance, store.active.rules.fingerprint, keys?.version) }
    router.add(middleware: InstanceHeaderMiddleware(instance: instance))
    router.add(middleware: RequestMetricsMiddleware(metrics: metrics))
    if configuration.cors != .off { router.add(middleware: CORSMiddleware(policy: configuration.cors)) }
    router.add(middleware: MethodNotAllowedMiddleware())
    router.add(middleware: BrowserSafetyMiddleware(allowedHosts: configuration.effectiveAllowedHosts, cors: configuration.cors))
    if let keys { router.add(middleware: AuthenticationMiddleware(keys: keys, quotas: quotas, metrics: metrics)) }
    let gate = StreamGate(quotas: quotas, limits: configuration.limits, metrics: metrics)
    let sessions = ResumableSessions(limits: configuration.resume)
    addOperatorRoutes(to: router, rules: store, tools: tools, toolSources: toolSources, mcpServers: mcpServers, metrics: metrics,
                      breaker: providers.breaker, recorder: recorder)
    // The playground and the browser client: no data in them, so no key.
    FrontendAssets.add(to: router)
    router.get("/ready") { _, _ in
        let reasons = await readiness.reasons()
        return try Response.json(ReadinessResponse(status: reasons.isEmpty ? "ready" : "not_ready", reasons: reasons,
                                                   instance: configuration.instanceID, rulesVersion: store.active.rules.fingerprint,
                                                   keysVersion: keys?.version),
                                 status: reasons.isEmpty ? .ok : .serviceUnavailable)
    }
    router.post("/mcp/chat/stream") { request, context in
        var request = request
        guard let model else {
            throw APIError.streamingNotConfigured
        }
        let key = context.apiKey
        if let routes = key?.routes {
            throw APIError(.forbidden, code: .forbidden, message: "this key may only chat through smart routing (POST /mcp/chat), "
                           + "on the routes \(routes.sorted().joined(separator: ", "))")
        }
        let chat = try gate.capped(try await request.decodeChatRequest(limit: configuration.maxBodyBytes), key: key,
                                   rules: store.active.rules, defaultModel: configuration.loop.model)
        let ticket = try await gate.admit(key, countRequest: true)
        var loopConfiguration = configuration.loop
        loopConfiguration.maxTokens = gate.maxTokens(loopConfiguration.maxTokens, key: key)
        let metered = MeteredModel(base: model, provider: Provider.builtIn,
                                   prices: store.active.rules.providers[Provider.builtIn]?.prices ?? [:], route: "none", metrics: metrics)
        let loop = AgentLoop(model: metered, tools: tools, configuration: loopConfiguration)
        let labels = StreamLabels(level: nil, route: nil, provider: Provider.builtIn, model: chat.model ?? loopConfiguration.model)
        return ChatStream.response(channel: context.channel, chat: chat, loop: loop, keepalive: configuration.keepaliveInterval,
                                   shutdownGrace: configuration.shutdownGrace, logger: context.logger, metrics: metrics, ticket: ticket,
                                   labels: labels, recorder: recorder, sessions: sessions, owner: key?.id, instance: configuration.instanceID)
    }
    // A resumable stream picked up again: the events after Last-Event-ID, then live ones. Only its key may.
    router.get("/mcp/chat/stream/{sessionId}") { request, context in
        let id = context.parameters.get("sessionId") ?? ""
        guard let session = sessions.session(id), session.owner == context.apiKey?.id else {
            throw APIError(.notFound, code: .sessionNotFound, message: "no resumable stream \(id) is kept for this key "
                           + "(it was not opened with \"resumable\": true, or its grace period ran out)", field: "sessionId")
        }
        let text = request.headers[HTTPField.Name("Last-Event-ID")!] ?? request.uri.queryParameters["lastEventId"].map(String.init)
        var lastId = 0
        if let text {
            guard let number = Int(text.trimmingCharacters(in: .whitespaces)), number >= 0 else {
                throw APIError(.badRequest, code: .invalidRequest, message: "Last-Event-ID must be an event id (a whole number)",
                               field: "Last-Event-ID")
            }
            lastId = number
        }
        return ChatStream.resume(session, after: lastId, channel: context.channel, keepalive: configuration.keepaliveInterval,
                                 shutdownGrace: configuration.shutdownGrace)
    }
    // A resumable stream stopped by its client (a closed connection alone does not stop it): model call and tools.
    router.delete("/mcp/chat/stream/{sessionId}") { _, context in
        let id = context.parameters.get("sessionId") ?? ""
        guard let session = sessions.session(id), session.owner == context.apiKey?.id else {
            throw APIError(.notFound, code: .sessionNotFound, message: "no resumable stream \(id) is kept for this key", field: "sessionId")
        }
        session.end.fire(.hungUp)
        return Response(status: .noContent)
    }
    router.post("/mcp/chat/analyze") { request, _ in
        var request = request
        let chat = try await request.decodeChatRequest(limit: configuration.maxBodyBytes)
        let (_, report) = try store.analyze(chat, defaultModel: configuration.loop.model, metrics: metrics, endpoint: "analyze")
        return try Response.json(report)
    }
    // Smart routing: analyse, then advise (JSON) or stream (SSE) with the route's model and iteration limit.
    router.post("/mcp/chat") { request, context in
        var request = request
        let chat = try await request.decodeChatRequest(limit: configuration.maxBodyBytes)
        let (analysis, advice) = try store.analyze(chat, defaultModel: configuration.loop.model, metrics: metrics, endpoint: "chat")
        var headers = HTTPFields()
        headers[.switchboardComplexity] = advice.complexity
        headers[.switchboardRoute] = advice.route
        headers[.switchboardRulesVersion] = advice.rulesVersion
        guard analysis.route.action == .stream else {
            try await gate.countRequest(context.apiKey)
            // An SSE-only frontend asks for the advice as a stream, and keeps one code path.
            if request.headers[.accept]?.contains("text/event-stream") == true {
                return ChatStream.advice(RoutingDecision(advice), extraHeaders: headers, instance: configuration.instanceID)
            }
            return try Response.json(advice)
        }
        // The route's provider (from the rules file), or the server's own Anthropic settings.
        let chosen: AnyLanguageModel
        if let provider = analysis.route.provider {
            chosen = AnyLanguageModel(try providers.model(for: provider))
        } else if let model {
            chosen = AnyLanguageModel(model)
        } else {
            throw APIError.streamingNotConfigured
        }
        let key = context.apiKey
        var loopConfiguration = configuration.loop
        loopConfiguration.model = advice.model ?? configuration.loop.model
        if let routes = key?.routes, !routes.contains(analysis.route.name) {
            throw APIError(.forbidden, code: .forbidden, message: "this key may not use the route \(analysis.route.name) "
                           + "(it may use \(routes.sorted().joined(separator: ", ")))")
        }
        if let models = key?.models, !models.contains(loopConfiguration.model) {
            throw APIError(.forbidden, code: .forbidden, message: "the route \(analysis.route.name) streams with "
                           + "\(loopConfiguration.model), which this key may not use")
        }
        // A route's iteration limit never goes above the server's.
        loopConfiguration.maxIterations = min(analysis.route.maxIterations ?? configuration.loop.maxIterations,
                                              configuration.loop.maxIterations)
        loopConfiguration.maxTokens = gate.maxTokens(loopConfiguration.maxTokens, key: key)
        var routed = chat
        routed.model = nil  // the route chooses the model
        routed = try gate.capped(routed, key: key, rules: store.active.rules, defaultModel: configuration.loop.model)
        let ticket = try await gate.admit(key, countRequest: true)
        headers[.switchboardProvider] = analysis.route.providerName
        headers[.switchboardModel] = loopConfiguration.model
        var decision = RoutingDecision(advice)
        decision.model = loopConfiguration.model
        // Each call is priced and counted under the provider that answered it.
        let rulesProviders = store.active.rules.providers
        func metered(_ client: some LanguageModel, provider: String) -> AnyLanguageModel {
            AnyLanguageModel(MeteredModel(base: client, provider: provider, prices: rulesProviders[provider]?.prices ?? [:],
                                          route: analysis.route.name, metrics: metrics))
        }
        var routeModel = metered(chosen, provider: analysis.route.providerName)
        if !analysis.route.fallbacks.isEmpty {
            // The route's own provider first, then its fallbacks whose client can be had (a fallback on the built-in
            // provider needs ANTHROPIC_API_KEY; one whose key variable went away is left out).
            var targets = [FallbackModel.Target(provider: analysis.route.providerName, model: loopConfiguration.model, client: routeModel)]
            for fallback in analysis.route.fallbacks {
                let client: (any LanguageModel)? = if let provider = fallback.provider { try? providers.model(for: provider) } else { model }
                if let client {
                    targets.append(.init(provider: fallback.providerName, model: fallback.model,
                                         client: metered(AnyLanguageModel(client), provider: fallback.providerName)))
                }
            }
            routeModel = AnyLanguageModel(FallbackModel(targets: targets, breaker: providers.breaker, decision: decision))
        }
        let loop = AgentLoop(model: routeModel, tools: tools, configuration: loopConfiguration)
        return ChatStream.response(channel: context.channel, chat: routed, loop: loop, keepalive: configuration.keepaliveInterval,
                                   shutdownGrace: configuration.shutdownGrace, logger: context.logger, metrics: metrics, ticket: ticket,
                                   extraHeaders: headers, routing: decision,
                                   labels: StreamLabels(level: advice.complexity, route: analysis.route.name,
                                                        provider: analysis.route.providerName, model: loopConfiguration.model),
                                   recorder: recorder, sessions: sessions, owner: key?.id, instance: configuration.instanceID)
    }
    return router
}

/// The API keys of the keys file and of `SWITCHBOARD_API_KEYS`; `nil` when none are configured, which is allowed
/// on loopback (or with `--allow-unauthenticated`) only.
func openAPIKeys(_ configuration: ServerConfiguration, logger: Logger) throws -> APIKeyStore? {
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
    switch RulesFile.read(path) {
    case .failure(let unreadable):
        throw StartupError(description: "cannot start: the API keys file cannot be read\n\(unreadable.diagnostic)")
    case .success(let (yaml, fingerprint)):
        let (keys, diagnostics) = APIKeysFile.load(yaml: yaml, path: path)
        guard let keys else {
            throw StartupError(description: "cannot start: the API keys file is invalid\n"
                               + diagnostics.map(\.description).joined(separator: "\n"))
        }
        logger.info("API keys loaded", metadata: ["path": "\(path)", "keys": "\(keys.keys.count + environmentKeys.count)"])
        return APIKeyStore(file: (keys, fingerprint), environmentKeys: environmentKeys)
    }
}

/// The operator's endpoints: `/health`, `/metrics`, `/rules`, `/tools`. On the main port the last three need an
/// admin key (when the server has keys); on `--admin-port` they need none.
func addOperatorRoutes<Context: RequestContext>(to router: Router<Context>, rules store: RulesStore, tools: ToolBox,
                                                toolSources: [String: String], mcpServers: [MCPServerConnection],
                                                metrics: ServerMetrics, breaker: CircuitBreaker, recorder: StreamRecorder?) {
    router.get("/health") { _, _ in
        // Degraded (still 200: the server answers) while an MCP server is being reconnected.
        let states = Dictionary(uniqueKeysWithValues: mcpServers.map { ($0.name, $0.isConnected ? "connected" : "reconnecting") })
        let cooling = breaker.coolingDown
        return try Response.json(HealthResponse(status: states.values.contains("reconnecting") || !cooling.isEmpty ? "degraded" : "ok",
                                                mcpServers: states.isEmpty ? nil : states,
                                                providersCoolingDown: cooling.isEmpty ? nil : cooling))
    }
    router.get("/metrics") { _, _ in
        for server in mcpServers { metrics.mcpServer(server.name, up: server.isConnected) }
        metrics.refreshInstance()
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
    }
    router.get("/rules") { _, _ in
        try Response.json(RulesStatusResponse(store))
    }
    router.get("/tools") { _, _ in
        try Response.json(ToolListResponse(tools: tools.definitions, sources: toolSources))
    }
    router.get("/rules/calibration") { request, _ in
        guard let recorder else {
            throw APIError(.serviceUnavailable, code: .notConfigured, message: "this server keeps no stream records")
        }
        func parameter(_ name: String, default value: Int, in range: ClosedRange<Int>) throws(APIError) -> Int {
            guard let text = request.uri.queryParameters[Substring(name)] else { return value }
            guard let number = Int(text), range.contains(number) else {
                throw APIError(.badRequest, code: .invalidRequest,
                               message: "\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)", field: name)
            }
            return number
        }
        // More than the server keeps is all it keeps.
        let window = min(try parameter("window", default: 10_000, in: 1...10_000_000), recorder.records.limit)
        let minSamples = try parameter("min_samples", default: 10, in: 1...10_000)
        // What finished a moment ago is counted too.
        await recorder.flush()
        let active = store.active
        let samples = try await recorder.records.samples(window: window).map {
            StreamSample(level: $0.level, route: $0.route, durationMs: $0.durationMs, firstTextMs: $0.firstTextMs)
        }
        let calibration = Calibration(rules: active.rules, samples: samples, minSamples: minSamples)
        let yaml: String = switch active.source {
        case .file(let path): (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        case .embedded: DefaultRules.yaml
        }
        return try Response.json(CalibrationResponse(calibration, rulesVersion: active.rules.fingerprint, window: window,
                                                     suggestions: calibration.editedLines(of: yaml, path: active.source.path)))
    }
}

/// The admin listener of `--admin-port`: the operator's endpoints without keys, on loopback by default.
func buildAdminApplication(configuration: ServerConfiguration, port: Int, rules store: RulesStore, tools: ToolBox,
                           toolSources: [String: String], mcpServers: [MCPServerConnection], metrics: ServerMetrics,
                           breaker: CircuitBreaker, recorder: StreamRecorder?, logger: Logger) -> some ApplicationProtocol {
    let router = Router(context: BasicRequestContext.self)
    // A page that rebinds its name to 127.0.0.1 must not read these either.
    var hosts = configuration
    hosts.host = configuration.adminHost
    router.add(middleware: MethodNotAllowedMiddleware())
    router.add(middleware: BrowserSafetyMiddleware(allowedHosts: hosts.effectiveAllowedHosts, cors: .off))
    addOperatorRoutes(to: router, rules: store, tools: tools, toolSources: toolSources, mcpServers: mcpServers, metrics: metrics,
                      breaker: breaker, recorder: recorder)
    return Application(router: router, configuration: .init(address: .hostname(configuration.adminHost, port: port),
                                                             serverName: "switchboard-admin"), logger: logger)
}
