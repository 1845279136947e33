import Foundation
import Logging

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
    /// Model used by stream routes that name none.
    public var defaultModel: String = "claude-sonnet-4-5"
    public var logLevel: Logger.Level = .info

    public init() {}

    /// Reads `SWITCHBOARD_*` variables over the defaults; command-line flags are applied after this.
    public init(environment: [String: String]) {
        self.init()
        if let host = environment["SWITCHBOARD_HOST"] { self.host = host }
        if let port = environment["SWITCHBOARD_PORT"].flatMap(Int.init) { self.port = port }
        if let path = environment["SWITCHBOARD_RULES"] { rulesPath = path }
        if let limit = environment["SWITCHBOARD_MAX_BODY_BYTES"].flatMap(Int.init) { maxBodyBytes = limit }
        if let model = environment["SWITCHBOARD_DEFAULT_MODEL"] { defaultModel = model }
        if let millis = environment["SWITCHBOARD_RULES_POLL_MS"].flatMap(Int.init), millis > 0 {
            rulesPollInterval = .milliseconds(millis)
        }
        if let level = environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) { logLevel = level }
    }
}
