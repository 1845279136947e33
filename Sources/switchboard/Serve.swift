import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import Server
import ServiceLifecycle
import Storage
import Tools

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the HTTP server.",
        discussion: "Flags override the SWITCHBOARD_* environment variables; see Docs/DEPLOYMENT.md."
    )

    @Option(help: "Address to listen on (use 0.0.0.0 behind a proxy in a container).")
    var host: String?

    @Option(help: "Port to listen on (0 picks a free one).")
    var port: Int?

    @OptionGroup var rules: RulesOption

    @Option(help: "HR database: a SQLite file (created and seeded on first start; default data/switchboard.sqlite), :memory:, or a postgres:// URL.")
    var database: String?

    @Option(help: "MCP configuration file ({\"mcpServers\": {…}}, as desktop MCP clients use) whose servers' tools join the built-in ones.")
    var mcpConfig: String?

    @Option(help: "Browser origins allowed to call the API from other sites: '*' or a comma-separated list (default: none).")
    var corsOrigins: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String?

    @Option(help: "Log format: text (lines) or json (one object per line, with the chat's trace and span ids when tracing).")
    var logFormat: String?

    @Option(help: "API keys file (YAML, reloaded when it changes; `switchboard keys new NAME` makes entries).")
    var apiKeys: String?

    @Option(help: "Host header values to answer to, comma-separated (default: localhost, 127.0.0.1, [::1] and --host).")
    var allowedHosts: String?

    @Option(help: "Also serve /metrics, /rules, /tools and /health without a key on this port, on --admin-host (default 127.0.0.1).")
    var adminPort: Int?

    @Option(help: "Address of the admin port.")
    var adminHost: String?

    @Option(help: "This instance's id among several behind one load balancer (default: host name and 6 random hex digits).")
    var instanceId: String?

    @Flag(help: "Listen on a non-loopback address without API keys (only behind something that checks every caller).")
    var allowUnauthenticated = false

    @Option(help: "A candidate rules file analysed beside the live one on every chat, never routing; GET /rules/shadow reports what it would change.")
    var shadowRules: String?

    @Flag(help: "Keep each chat's last user text (2 KiB at most) with its stream record, so `rules review --export` can write misroutes as cases.")
    var recordQueries = false

    func validate() throws {
        if let logFormat, LogFormat(rawValue: logFormat) == nil {
            throw ValidationError("--log-format must be text or json.")
        }
        if let port, !(0...65535).contains(port) {
            throw ValidationError("--port must be between 0 and 65535.")
        }
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical.")
        }
        if let path = rules.path, !FileManager.default.fileExists(atPath: path) {
            throw ValidationError("No rules file at \(path). Pass an existing file, or leave --rules out to use ./rules.yaml or the built-in rules.")
        }
        if let mcpConfig, !FileManager.default.fileExists(atPath: mcpConfig) {
            throw ValidationError("No MCP configuration file at \(mcpConfig).")
        }
        if let instanceId, !ServerConfiguration.isValidInstanceID(instanceId) {
            throw ValidationError("--instance-id must be 1 to 64 letters, digits, dots, dashes or underscores.")
        }
        if let apiKeys, !FileManager.default.fileExists(atPath: apiKeys) {
            throw ValidationError("No API keys file at \(apiKeys). `switchboard keys new NAME` prints an entry to put in one.")
        }
    }

    func run() async throws {
        var configuration = ServerConfiguration(environment: ProcessInfo.processInfo.environment)
        if let host { configuration.host = host }
        if let port { configuration.port = port }
        if let path = rules.path { configuration.rulesPath = path }
        if let database { configuration.database = DatabaseLocation(database) }
        if let mcpConfig { configuration.mcpConfigPath = mcpConfig }
        if let corsOrigins { configuration.cors = CORSPolicy(corsOrigins) }
        if let logLevel, let level = Logger.Level(rawValue: logLevel) { configuration.logLevel = level }
        if let apiKeys { configuration.apiKeysPath = apiKeys }
        if let instanceId { configuration.instanceID = instanceId }
        if let allowedHosts { configuration.allowedHosts = Set(ServerConfiguration.list(allowedHosts)) }
        if allowUnauthenticated { configuration.allowUnauthenticated = true }
        if recordQueries { configuration.recordQueries = true }
        if let shadowRules { configuration.shadowRulesPath = shadowRules }
        if let adminPort { configuration.adminPort = adminPort }
        if let adminHost { configuration.adminHost = adminHost }
        let environment = ProcessInfo.processInfo.environment
        let formatName = logFormat ?? environment["SWITCHBOARD_LOG_FORMAT"] ?? LogFormat.text.rawValue
        guard let format = LogFormat(rawValue: formatName) else {
            printError("SWITCHBOARD_LOG_FORMAT=\(formatName) must be text or json")
            throw ExitCode(2)
        }
        do {
            // One registry for our metrics and any library's that speak swift-metrics, served at GET /metrics.
            let metrics = ServerMetrics()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics.registry))
            let exporter: (any Service)?
            do {
                exporter = try Observability.bootstrap(configuration, logFormat: format, metrics: metrics)
            } catch {
                printError("tracing could not be set up from the OTEL_* variables: \(error)")
                throw ExitCode(2)
            }
            let readiness = Readiness()
            let app = try await buildApplication(configuration: configuration, metrics: metrics, readiness: readiness)
            // Services shut down last to first: readiness says 503 at once, then the server drains, then the span
            // exporter sends what is left.
            let services: [any Service] = (exporter.map { [$0] } ?? []) + [app, readiness]
            let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                                                          logger: Logger(label: "switchboard")))
            try await group.run()
        } catch let error as StartupError {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(2)
        }
    }
}
