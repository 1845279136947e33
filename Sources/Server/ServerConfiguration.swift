import ChatPipeline
import Foundation
import Logging
import Tools
import Upstream

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
        if let model = environment["SWITCHBOARD_DEFAULT_MODEL"], !model.isEmpty { loop.model = model }
        if let count = environment["SWITCHBOARD_MAX_ITERATIONS"].flatMap(Int.init), count > 0 { loop.maxIterations = count }
        if let tokens = environment["SWITCHBOARD_MAX_TOKENS"].flatMap(Int.init), tokens > 0 { loop.maxTokens = tokens }
        if let seconds = Self.seconds(environment["SWITCHBOARD_TOOL_TIMEOUT_SECONDS"]) { loop.toolTimeout = seconds }
    }

    private static func seconds(_ text: String?) -> Duration? {
        guard let text, let value = Double(text), value > 0 else { return nil }
        return .milliseconds(Int64(value * 1000))
    }
}
