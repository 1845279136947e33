import ChatPipeline
import Foundation
import Logging
import Tools
import Upstream

/// Limits that hold for every client, whatever its key.
public struct ServerLimits: Sendable {
    /// Streams open at once on this server; more are refused with `503 overloaded`.
    public var maxStreams = 1024
    /// The most output tokens one model call may ask for; a larger `maxTokens` is lowered to it.
    public var maxTokensCeiling = 16_384
    /// Messages in one request.
    public var maxMessages = 200
    /// Models a request may name; `nil`: the default model and every model a route of the rules names.
    public var allowedModels: Set<String>?

    public init() {}
}

/// Everything `switchboard serve` can be told, with defaults that run on a fresh machine.
public struct ServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 3000
    /// `--rules PATH`; when `nil`, `./rules.yaml` if present, else the built-in defaults.
    public var rulesPath: String?
    /// How often the rules file is checked for changes.
    public var rulesPollInterval: Duration = .milliseconds(250)
    /// Largest request body accepted, in bytes.
    public var maxBodyBytes: Int = 1 << 20
    public var logLevel: Logger.Level = .info
    /// The Anthropic client's settings; `nil` without `ANTHROPIC_API_KEY`, and then the stream endpoint answers 503.
    public var anthropic: AnthropicConfiguration?
    /// The HR database: a SQLite file (created and seeded on first start), in memory, or PostgreSQL.
    public var database: DatabaseLocation = .sqlite(path: "data/switchboard.sqlite")
    /// An MCP configuration file (`{"mcpServers": {…}}`, the desktop clients' format) naming servers whose
    /// tools join the built-in ones; `nil` for none.
    public var mcpConfigPath: String?
    /// Which browser origins may call the API from other sites (`SWITCHBOARD_CORS_ORIGINS`).
    public var cors: CORSPolicy = .off
    /// How often a `: keepalive` comment goes out on an open stream.
    public var keepaliveInterval: Duration = .seconds(15)
    /// The API keys file (YAML, reloaded when it changes); `nil` for none.
    public var apiKeysPath: String?
    /// Keys given directly (`SWITCHBOARD_API_KEYS`, comma-separated), for a quick start.
    public var apiKeys: [String] = []
    /// Serve a non-loopback address without keys (`--allow-unauthenticated`): anyone who can reach the port
    /// spends the model key and reads the HR data.
    public var allowUnauthenticated = false
    /// `Host` header values accepted, against DNS rebinding; `nil`: localhost, 127.0.0.1, [::1] and the bound host.
    public var allowedHosts: Set<String>?
    public var limits = ServerLimits()
    /// A second port serving `/metrics`, `/rules`, `/tools` and `/health` without a key, for Prometheus scrapes
    /// and operators (`--admin-port`); `nil` for none. It listens on `adminHost`, loopback by default.
    public var adminPort: Int?
    public var adminHost = "127.0.0.1"
    /// The agentic loop's defaults: the model of `/mcp/chat/stream` and of stream routes that name none, model
    /// calls per chat, tokens per call, tool timeout.
    public var loop = AgentConfiguration()

    public init() {}

    /// Reads `SWITCHBOARD_*` variables over the defaults; command-line flags are applied after this.
    public init(environment: [String: String]) {
        self.init()
        if let host = environment["SWITCHBOARD_HOST"] { self.host = host }
        if let port = environment["SWITCHBOARD_PORT"].flatMap(Int.init) { self.port = port }
        if let path = environment["SWITCHBOARD_RULES"] { rulesPath = path }
        if let limit = environment["SWITCHBOARD_MAX_BODY_BYTES"].flatMap(Int.init) { maxBodyBytes = limit }
        if let millis = environment["SWITCHBOARD_RULES_POLL_MS"].flatMap(Int.init), millis > 0 {
            rulesPollInterval = .milliseconds(millis)
        }
        if let level = environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) { logLevel = level }
        if let key = environment["ANTHROPIC_API_KEY"], !key.isEmpty {
            var anthropic = AnthropicConfiguration(apiKey: key)
            if let url = environment["ANTHROPIC_BASE_URL"], !url.isEmpty { anthropic.baseURL = url }
            if let seconds = Self.seconds(environment["SWITCHBOARD_UPSTREAM_IDLE_TIMEOUT"]) { anthropic.timeouts.idle = seconds }
            if let seconds = Self.seconds(environment["SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT"]) { anthropic.timeouts.firstByte = seconds }
            if let seconds = Self.seconds(environment["SWITCHBOARD_UPSTREAM_TIMEOUT"]) { anthropic.timeouts.overall = seconds }
            if let count = environment["SWITCHBOARD_UPSTREAM_MAX_CONNECTIONS"].flatMap(Int.init), count > 0 {
                anthropic.maxConnections = count
            }
            self.anthropic = anthropic
        }
        if let seconds = Self.seconds(environment["SWITCHBOARD_KEEPALIVE_SECONDS"]) { keepaliveInterval = seconds }
        if let spec = environment["SWITCHBOARD_DATABASE"], !spec.isEmpty { database = DatabaseLocation(spec) }
        if let path = environment["SWITCHBOARD_MCP_CONFIG"], !path.isEmpty { mcpConfigPath = path }
        if let origins = environment["SWITCHBOARD_CORS_ORIGINS"] { cors = CORSPolicy(origins) }
        if let path = environment["SWITCHBOARD_API_KEYS_FILE"], !path.isEmpty { apiKeysPath = path }
        if let keys = environment["SWITCHBOARD_API_KEYS"] { apiKeys = Self.list(keys) }
        if environment["SWITCHBOARD_ALLOW_UNAUTHENTICATED"] == "1" { allowUnauthenticated = true }
        if let hosts = environment["SWITCHBOARD_ALLOWED_HOSTS"], !hosts.isEmpty { allowedHosts = Set(Self.list(hosts)) }
        if let count = environment["SWITCHBOARD_MAX_STREAMS"].flatMap(Int.init), count > 0 { limits.maxStreams = count }
        if let tokens = environment["SWITCHBOARD_MAX_TOKENS_CEILING"].flatMap(Int.init), tokens > 0 { limits.maxTokensCeiling = tokens }
        if let count = environment["SWITCHBOARD_MAX_MESSAGES"].flatMap(Int.init), count > 0 { limits.maxMessages = count }
        if let models = environment["SWITCHBOARD_ALLOWED_MODELS"], !models.isEmpty { limits.allowedModels = Set(Self.list(models)) }
        if let port = environment["SWITCHBOARD_ADMIN_PORT"].flatMap(Int.init) { adminPort = port }
        if let host = environment["SWITCHBOARD_ADMIN_HOST"], !host.isEmpty { adminHost = host }
        if let count = environment["SWITCHBOARD_MAX_TOOL_CALLS_PER_TURN"].flatMap(Int.init), count > 0 { loop.maxToolCallsPerTurn = count }
        if let model = environment["SWITCHBOARD_DEFAULT_MODEL"], !model.isEmpty { loop.model = model }
        if let count = environment["SWITCHBOARD_MAX_ITERATIONS"].flatMap(Int.init), count > 0 { loop.maxIterations = count }
        if let tokens = environment["SWITCHBOARD_MAX_TOKENS"].flatMap(Int.init), tokens > 0 { loop.maxTokens = tokens }
        if let seconds = Self.seconds(environment["SWITCHBOARD_TOOL_TIMEOUT_SECONDS"]) { loop.toolTimeout = seconds }
    }

    /// The hosts a `Host` header may name: the configured ones, or loopback's names and the bound address.
    public var effectiveAllowedHosts: Set<String> {
        allowedHosts ?? ["localhost", "127.0.0.1", "[::1]", "::1", host.lowercased()]
    }

    /// Whether the server listens on loopback only.
    public var isLoopback: Bool {
        ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host.lowercased()) || host.hasPrefix("127.")
    }

    /// Comma-separated values, trimmed, empty ones dropped.
    public static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    private static func seconds(_ text: String?) -> Duration? {
        guard let text, let value = Double(text), value > 0 else { return nil }
        return .milliseconds(Int64(value * 1000))
    }
}
