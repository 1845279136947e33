import ChatCore
import ChatPipeline
import Foundation
import Logging
import Storage
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
    /// This instance's name among several behind one load balancer: in `/ready`, `/metrics` and the
    /// `X-Switchboard-Instance` header. Default: the host name and six random hex digits.
    public var instanceID: String = ServerConfiguration.defaultInstanceID()
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
    /// The upstream timeouts and connection limit of every provider (`SWITCHBOARD_UPSTREAM_*`); the built-in
    /// provider's copy is in `anthropic`.
    public var upstream = UpstreamSettings()
    /// Whether chats are traced: the OpenTelemetry variables name an OTLP endpoint
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and do not turn the SDK or the
    /// trace exporter off (`OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`). The exporter's own settings are
    /// swift-otel's, read from the same variables.
    public var tracing = false
    /// Whether spans carry the messages, tool arguments and results
    /// (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`): off, as the conventions ask, since they may hold
    /// personal data.
    /// Set through `captureContent(_:)`, which tells the model clients and the loop too.
    public var captureContent: Bool { upstream.captureContent }

    /// Turns the capture of message content in spans on or off, for the model clients and the tools alike.
    public mutating func captureContent(_ on: Bool) {
        upstream.captureContent = on
        loop.captureContent = on
        anthropic?.captureContent = on
    }
    /// The HR database: a SQLite file (created and seeded on first start), in memory, or PostgreSQL.
    public var database: DatabaseLocation = .sqlite(path: "data/switchboard.sqlite")
    /// An MCP configuration file (`{"mcpServers": {…}}`, the desktop clients' format) naming servers whose
    /// tools join the built-in ones; `nil` for none.
    public var mcpConfigPath: String?
    /// Which browser origins may call the API from other sites (`SWITCHBOARD_CORS_ORIGINS`).
    public var cors: CORSPolicy = .off
    /// How often a `: keepalive` comment goes out on an open stream.
    public var keepaliveInterval: Duration = .seconds(15)
    /// How long a streamed answer of the compatible endpoints (`/v1/chat/completions`, `/v1/messages`) holds its
    /// head for the model's first byte, so a failure before it is an HTTP error; then the head goes out and
    /// keepalive comments keep the connection open.
    public var headWait: Duration = .seconds(10)
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
    /// A connection idle this long between requests, or while its request head or body is still arriving, is
    /// closed. Above nginx's default upstream `keepalive_timeout` (60 s), so nginx closes first.
    public var idleTimeout: Duration = .seconds(65)
    /// A client that reads nothing this long while the server has data for it is dropped, and its stream's
    /// upstream call and tools stop.
    public var writeTimeout: Duration = .seconds(30)
    /// On SIGTERM or SIGINT, how long open streams have to finish before each ends with a `server_shutdown` error.
    public var shutdownGrace: Duration = .seconds(25)
    /// Connections open at once; more wait in the listen backlog until one closes.
    public var maxConnections = 4096
    /// Finished streams kept in the database for calibration (the oldest go first).
    public var streamRecordsLimit = 50_000
    /// Whether a stream's record keeps its chat's last user text (at most `recordedTextLimit` bytes), so a review can
    /// export misroutes as evaluation cases. Off: nothing of the text is stored.
    public var recordQueries = false
    /// A candidate rules file analysed beside the live one on every chat, never routing (`GET /rules/shadow`).
    public var shadowRulesPath: String?
    public static let recordedTextLimit = 2048
    /// With quotas shared in PostgreSQL: how long a stream slot counts after its instance last renewed it, so the
    /// longest a crashed instance's streams keep holding their keys' slots.
    public var quotaLease: Duration = .seconds(30)
    /// The longest a request waits for the shared quota store (`SWITCHBOARD_QUOTA_TIMEOUT`): past it the request
    /// is refused `503 quotas_unavailable` with `Retry-After`.
    public var quotaTimeout: Duration = .seconds(3)
    /// Resumable streams: how long a session waits for its client, and the bytes of events kept.
    public var resume = ResumableSessions.Limits()
    /// The agentic loop's defaults: the model of `/mcp/chat/stream` and of stream routes that name none, model
    /// calls per chat, tokens per call, tool timeout.
    public var loop = AgentConfiguration()

    public init() {}

    /// Values in the environment that could not be used (not a number, out of range), each a sentence.
    public private(set) var environmentProblems: [String] = []

    /// Reads `SWITCHBOARD_*` variables over the defaults; command-line flags are applied after this. A value that
    /// is not a number, or out of its range, is kept out and named in `environmentProblems` (the server refuses
    /// to start with them), never silently ignored and never a trap.
    public init(environment: [String: String]) {
        self.init()
        var env = EnvironmentReader(environment)
        if let id = env.text("SWITCHBOARD_INSTANCE_ID") {
            if Self.isValidInstanceID(id) { instanceID = id } else {
                env.problem("SWITCHBOARD_INSTANCE_ID=\(id) must be 1 to 64 letters, digits, dots, dashes or underscores")
            }
        }
        if let host = env.text("SWITCHBOARD_HOST") { self.host = host }
        if let port = env.integer("SWITCHBOARD_PORT", in: Self.ranges.port) { self.port = port }
        if let path = env.text("SWITCHBOARD_RULES") { rulesPath = path }
        if let limit = env.integer("SWITCHBOARD_MAX_BODY_BYTES", in: Self.ranges.bodyBytes) { maxBodyBytes = limit }
        if let millis = env.integer("SWITCHBOARD_RULES_POLL_MS", in: 10...60_000) { rulesPollInterval = .milliseconds(millis) }
        if let name = env.text("LOG_LEVEL") {
            if let level = Logger.Level(rawValue: name) { logLevel = level } else { env.problem("LOG_LEVEL=\(name) is not a log level") }
        }
        // Every provider's settings, read whether or not the built-in provider has a key.
        if let seconds = env.seconds("SWITCHBOARD_UPSTREAM_IDLE_TIMEOUT", in: Self.ranges.timeout) { upstream.timeouts.idle = seconds }
        if let seconds = env.seconds("SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT", in: Self.ranges.timeout) {
            upstream.timeouts.firstByte = seconds
        }
        if let seconds = env.seconds("SWITCHBOARD_UPSTREAM_TIMEOUT", in: Self.ranges.timeout) { upstream.timeouts.overall = seconds }
        if let count = env.integer("SWITCHBOARD_UPSTREAM_MAX_CONNECTIONS", in: 1...100_000) { upstream.maxConnections = count }
        if let path = env.text("SWITCHBOARD_UPSTREAM_CA_FILE") {
            if let problem = UpstreamSettings.problem(withCAFile: path) {
                env.problem("SWITCHBOARD_UPSTREAM_CA_FILE: \(problem)")
            } else {
                upstream.caFile = path
            }
        }
        tracing = Self.tracingEnabled(environment)
        // Values the tracing library would stop the process on (it is built with OTLP/HTTP only), refused by name.
        for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let value = env.text(name), value.lowercased() == "grpc" {
                env.problem("\(name)=\(value) is not available in this build: use http/protobuf or http/json")
            }
        }
        if let sampler = env.text("OTEL_TRACES_SAMPLER"), sampler.lowercased().hasSuffix("jaeger_remote") {
            env.problem("OTEL_TRACES_SAMPLER=\(sampler) is not supported: use always_on, always_off, traceidratio or their parentbased_ forms")
        }
        if let text = env.text("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT") {
            switch text.lowercased() {
            case "true": captureContent(true)
            case "false": captureContent(false)
            default: env.problem("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=\(text) must be true or false")
            }
        }
        if let key = env.text("ANTHROPIC_API_KEY") {
            var anthropic = AnthropicConfiguration(apiKey: key)
            if let url = env.text("ANTHROPIC_BASE_URL") { anthropic.baseURL = url }
            anthropic.timeouts = upstream.timeouts
            anthropic.maxConnections = upstream.maxConnections
            anthropic.captureContent = upstream.captureContent
            anthropic.caFile = upstream.caFile
            self.anthropic = anthropic
        }
        if let seconds = env.seconds("SWITCHBOARD_KEEPALIVE_SECONDS", in: 0.01...3_600) { keepaliveInterval = seconds }
        if let seconds = env.seconds("SWITCHBOARD_HEAD_WAIT_SECONDS", in: 0...600) { headWait = seconds }
        if let spec = env.text("SWITCHBOARD_DATABASE") { database = DatabaseLocation(spec) }
        if let path = env.text("SWITCHBOARD_MCP_CONFIG") { mcpConfigPath = path }
        if let origins = environment["SWITCHBOARD_CORS_ORIGINS"] { cors = CORSPolicy(origins) }
        if let path = env.text("SWITCHBOARD_API_KEYS_FILE") { apiKeysPath = path }
        if let keys = environment["SWITCHBOARD_API_KEYS"] { apiKeys = Self.list(keys) }
        if environment["SWITCHBOARD_ALLOW_UNAUTHENTICATED"] == "1" { allowUnauthenticated = true }
        if environment["SWITCHBOARD_RECORD_QUERIES"] == "1" { recordQueries = true }
        if let path = env.text("SWITCHBOARD_SHADOW_RULES") { shadowRulesPath = path }
        if let hosts = env.text("SWITCHBOARD_ALLOWED_HOSTS") { allowedHosts = Set(Self.list(hosts)) }
        if let count = env.integer("SWITCHBOARD_MAX_STREAMS", in: 1...1_000_000) { limits.maxStreams = count }
        if let tokens = env.integer("SWITCHBOARD_MAX_TOKENS_CEILING", in: 1...1_000_000) { limits.maxTokensCeiling = tokens }
        if let count = env.integer("SWITCHBOARD_MAX_MESSAGES", in: 1...100_000) { limits.maxMessages = count }
        if let models = env.text("SWITCHBOARD_ALLOWED_MODELS") { limits.allowedModels = Set(Self.list(models)) }
        if let port = env.integer("SWITCHBOARD_ADMIN_PORT", in: Self.ranges.port) { adminPort = port }
        if let host = env.text("SWITCHBOARD_ADMIN_HOST") { adminHost = host }
        if let count = env.integer("SWITCHBOARD_MAX_TOOL_CALLS_PER_TURN", in: 1...1_000) { loop.maxToolCallsPerTurn = count }
        if let seconds = env.seconds("SWITCHBOARD_IDLE_TIMEOUT", in: 1...3_600) { idleTimeout = seconds }
        if let count = env.integer("SWITCHBOARD_MAX_CONNECTIONS", in: 1...1_000_000) { maxConnections = count }
        if let count = env.integer("SWITCHBOARD_STREAM_RECORDS", in: 1...10_000_000) { streamRecordsLimit = count }
        if let seconds = env.seconds("SWITCHBOARD_QUOTA_LEASE", in: 1...3_600) { quotaLease = seconds }
        if let seconds = env.seconds("SWITCHBOARD_QUOTA_TIMEOUT", in: 0.05...600) { quotaTimeout = seconds }
        if let seconds = env.seconds("SWITCHBOARD_RESUME_GRACE", in: 1...3_600) { resume.grace = seconds }
        if let bytes = env.integer("SWITCHBOARD_RESUME_BUFFER_BYTES", in: 1_024...(1 << 30)) { resume.sessionBytes = bytes }
        if let bytes = env.integer("SWITCHBOARD_RESUME_TOTAL_BYTES", in: 1_024...(1 << 34)) { resume.totalBytes = bytes }
        if let bytes = env.integer("SWITCHBOARD_RESUME_KEY_BYTES", in: 1_024...(1 << 34)) { resume.keyBytes = bytes }
        if let seconds = env.seconds("SWITCHBOARD_WRITE_TIMEOUT", in: 0.01...3_600) { writeTimeout = seconds }
        if let seconds = env.seconds("SWITCHBOARD_SHUTDOWN_GRACE", in: 0...3_600) { shutdownGrace = seconds }
        if let model = env.text("SWITCHBOARD_DEFAULT_MODEL") { loop.model = model }
        if let count = env.integer("SWITCHBOARD_MAX_ITERATIONS", in: 1...100) { loop.maxIterations = count }
        if let tokens = env.integer("SWITCHBOARD_MAX_TOKENS", in: 1...1_000_000) { loop.maxTokens = tokens }
        if let seconds = env.seconds("SWITCHBOARD_TOOL_TIMEOUT_SECONDS", in: Self.ranges.timeout) { loop.toolTimeout = seconds }
        environmentProblems = env.problems
    }

    /// Tracing is on when an OTLP endpoint is named and neither the SDK nor the trace exporter is turned off.
    public static func tracingEnabled(_ environment: [String: String]) -> Bool {
        func set(_ name: String) -> Bool { !(environment[name]?.trimmingCharacters(in: .whitespaces).isEmpty ?? true) }
        guard set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") else { return false }
        if environment["OTEL_SDK_DISABLED"]?.lowercased() == "true" { return false }
        if environment["OTEL_TRACES_EXPORTER"]?.lowercased() == "none" { return false }
        return true
    }

    /// The ranges values must stay in.
    static let ranges = (port: 0...65_535, bodyBytes: 1...(64 << 20), timeout: 0.01...86_400.0)

    /// Everything that keeps this configuration from running, each a sentence naming the setting: what the
    /// environment had wrong, and values (from flags or code) out of range.
    public var problems: [String] {
        var problems = environmentProblems
        func check(_ ok: Bool, _ sentence: @autoclosure () -> String) { if !ok { problems.append(sentence()) } }
        check(Self.ranges.port.contains(port), "the port \(port) is not between 0 and 65535")
        check(Self.ranges.bodyBytes.contains(maxBodyBytes), "the body limit \(maxBodyBytes) is not between 1 byte and 64 MiB")
        check(keepaliveInterval > .zero, "the keepalive interval must be positive")
        check(loop.maxIterations >= 1, "the iteration limit must be at least 1")
        check(loop.maxTokens >= 1, "maxTokens must be at least 1")
        check(loop.toolTimeout > .zero, "the tool timeout must be positive")
        check(limits.maxStreams >= 1, "the stream limit must be at least 1")
        check(idleTimeout > .zero, "the idle timeout must be positive")
        check(writeTimeout > .zero, "the write timeout must be positive")
        check(maxConnections >= 1, "the connection limit must be at least 1")
        if let adminPort {
            check(Self.ranges.port.contains(adminPort), "the admin port \(adminPort) is not between 0 and 65535")
            check(adminPort == 0 || adminPort != port, "the admin port must differ from the port (\(port))")
        }
        return problems
    }

    /// The names loopback answers to in a `Host` header.
    static let loopbackHostNames: Set<String> = ["localhost", "127.0.0.1", "[::1]", "::1"]

    /// The hosts a `Host` header may name (compared lowercased): the configured ones, or loopback's names and the
    /// bound address.
    public var effectiveAllowedHosts: Set<String> {
        allowedHosts.map { Set($0.map { $0.lowercased() }) } ?? Self.loopbackHostNames.union([host.lowercased()])
    }

    /// Whether the server listens on loopback only: its host parses as a loopback address (or is `localhost`).
    public var isLoopback: Bool {
        Loopback.isLoopback(host: host)
    }

    /// Whether the admin port listens on loopback only.
    public var isAdminLoopback: Bool {
        Loopback.isLoopback(host: adminHost)
    }

    /// The host name and six random hex digits: unique across restarts and machines.
    public static func defaultInstanceID() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? ""
        let clean = String(host.unicodeScalars.filter { ($0.isASCII && CharacterSet.alphanumerics.contains($0)) || $0 == "-" }
            .map(Character.init).prefix(40))
        let suffix = String(UInt32.random(in: 0..<(1 << 24)), radix: 16)
        return (clean.isEmpty ? "switchboard" : clean) + "-" + String(repeating: "0", count: 6 - suffix.count) + suffix
    }

    /// 1 to 64 ASCII letters, digits, dots, dashes or underscores: safe in a header, a label and a session id.
    public static func isValidInstanceID(_ id: String) -> Bool {
        (1...64).contains(id.unicodeScalars.count) && id.unicodeScalars.allSatisfy {
            ($0.isASCII && CharacterSet.alphanumerics.contains($0)) || $0 == "." || $0 == "-" || $0 == "_"
        }
    }

    /// Comma-separated values, trimmed, empty ones dropped.
    public static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }


}

/// Reads settings from the environment, keeping a sentence for each value it cannot use.
private struct EnvironmentReader {
    let environment: [String: String]
    private(set) var problems: [String] = []

    init(_ environment: [String: String]) {
        self.environment = environment
    }

    mutating func problem(_ sentence: String) {
        problems.append(sentence)
    }

    /// The variable's value; `nil` when unset or empty.
    func text(_ name: String) -> String? {
        guard let value = environment[name], !value.isEmpty else { return nil }
        return value
    }

    mutating func integer(_ name: String, in range: ClosedRange<Int>) -> Int? {
        guard let text = text(name) else { return nil }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            problem("\(name)=\(text) is not a whole number from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return value
    }

    mutating func seconds(_ name: String, in range: ClosedRange<Double>) -> Duration? {
        guard let text = text(name) else { return nil }
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite, range.contains(value) else {
            problem("\(name)=\(text) is not a number of seconds from \(range.lowerBound.compactText) to \(range.upperBound.compactText)")
            return nil
        }
        return .nanoseconds(Int64(value * 1e9))
    }
}
