/// A model service a route streams on, from the rules file's `providers:` section. No secret is ever in the file:
/// `apiKeyEnv` names the environment variable that holds the key.
public struct Provider: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// The Anthropic Messages API.
        case anthropic
        /// Any OpenAI-compatible Chat Completions server (OpenAI, Ollama, vLLM, llama-server, LiteLLM, …).
        case openai
    }

    /// The name routes use; `anthropic` is built in (the server's `ANTHROPIC_*` settings) unless the file defines it.
    public let name: String
    public let kind: Kind
    /// The API's base URL (for `openai`, `/v1` included); `nil`: the kind's default (Anthropic's only).
    public let baseURL: String?
    /// The environment variable holding the key; `nil`: no key (local servers).
    public let apiKeyEnv: String?
    /// For `openai`: the name of the token-limit field (`max_tokens` or `max_completion_tokens`).
    public let maxTokensField: String?
    /// What each model's tokens cost, by model name; a model without a price has no cost.
    public let prices: [String: ModelPrice]
    /// For `anthropic`: whether requests mark prompt-cache breakpoints (`prompt_cache: false` turns it off).
    public let promptCache: Bool

    public init(name: String, kind: Kind, baseURL: String?, apiKeyEnv: String?, maxTokensField: String? = nil,
                prices: [String: ModelPrice] = [:], promptCache: Bool = true) {
        self.promptCache = promptCache
        self.name = name
        self.kind = kind
        self.baseURL = baseURL
        self.apiKeyEnv = apiKeyEnv
        self.maxTokensField = maxTokensField
        self.prices = prices
    }

    /// The name of the built-in provider: Anthropic, configured by the server's environment.
    public static let builtIn = "anthropic"
}

/// A model's prices in US dollars per million tokens, as providers publish them.
public struct ModelPrice: Sendable, Hashable {
    public var input: Double
    public var output: Double
    /// Input read from the prompt cache; the input price when the file gives none.
    public var cacheRead: Double
    /// Input written to the prompt cache; the input price when the file gives none.
    public var cacheWrite: Double

    public init(input: Double, output: Double, cacheRead: Double? = nil, cacheWrite: Double? = nil) {
        self.input = input
        self.output = output
        self.cacheRead = cacheRead ?? input
        self.cacheWrite = cacheWrite ?? input
    }

    /// What these tokens cost, in US dollars.
    public func cost(input inputTokens: Int, output outputTokens: Int, cacheRead readTokens: Int = 0, cacheWrite writeTokens: Int = 0) -> Double {
        (Double(inputTokens) * input + Double(outputTokens) * output + Double(readTokens) * cacheRead
            + Double(writeTokens) * cacheWrite) / 1_000_000
    }
}

extension Provider {
    /// Variables a provider's `api_key_env` may not name: Switchboard's own settings (`SWITCHBOARD_*`, among them
    /// the database URL and the API keys) and the database drivers' (`DATABASE_URL`, `PG*`).
    public static func isServerVariable(_ name: String) -> Bool {
        let upper = name.uppercased()
        return upper.hasPrefix("SWITCHBOARD_") || upper == "DATABASE_URL" || upper.hasPrefix("PG")
    }

    /// The host of an `http://` URL (not https), lowercased, brackets kept off; `nil` for any other URL.
    public static func plainHTTPHost(_ url: String) -> String? {
        guard url.lowercased().hasPrefix("http://") else { return nil }
        var authority = url.dropFirst("http://".count).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            return String(authority[authority.index(after: authority.startIndex)..<close]).lowercased()
        }
        return String(authority.prefix { $0 != ":" }).lowercased()
    }
}
