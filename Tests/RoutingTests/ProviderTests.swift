import Routing
import TestSupport
import Testing

/// A rules file with a `providers:` section and the given routes.
private func providersYAML(_ providers: String, routes: String) -> String {
    rulesFile(providers: providers, levels: "  - { name: low, route: quick, estimated_seconds: 2 }", routes: routes,
              rules: "  - { id: r, weight: 1, when: { any_keywords: [x] } }")
}

@Suite("Providers in the rules file")
struct ProviderTests {
    @Test("a route names its provider and model; no section keeps the built-in anthropic")
    func parsed() throws {
        let yaml = providersYAML("""
              local: { kind: openai, base_url: "http://127.0.0.1:11434/v1" }
              openai: { kind: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY, max_tokens_field: max_completion_tokens }
            """, routes: """
              quick: { action: stream, provider: local, model: "llama3.1:8b" }
              smart: { action: stream, provider: openai, model: gpt-4.1 }
              claude: { action: stream, provider: anthropic }
            """)
        let outcome = RuleSetLoader.load(yaml: yaml, path: "rules.yaml", fingerprint: "t", environment: ["OPENAI_API_KEY"])
        let rules = try #require(outcome.accepted, "\(outcome.diagnostics)")
        #expect(rules.providers["local"] == Provider(name: "local", kind: .openai, baseURL: "http://127.0.0.1:11434/v1", apiKeyEnv: nil))
        #expect(rules.providers["openai"]?.maxTokensField == "max_completion_tokens")
        #expect(rules.routes["quick"]?.provider == rules.providers["local"])
        #expect(rules.routes["quick"]?.providerName == "local")
        #expect(rules.routes["quick"]?.model == "llama3.1:8b")
        #expect(rules.routes["claude"]?.provider == nil, "the built-in provider: the server's settings")
        #expect(rules.routes["claude"]?.providerName == "anthropic")
        let plain = try #require(load(rulesYAML(rules: "  - { id: r, weight: 1, when: { any_keywords: [x] } }")).accepted)
        #expect(plain.providers.isEmpty)
        #expect(plain.routes["quick"]?.provider == nil)
    }

    @Test("each mistake is a diagnostic at its place: unknown provider or kind, no base_url, an unset key variable, no model")
    func diagnostics() {
        let yaml = providersYAML("""
              local: { kind: opneai, base_url: "http://127.0.0.1:11434/v1" }
              bare: { kind: openai }
              keyed: { kind: openai, base_url: "ftp://example", api_key_env: LOCAL_TEST_UNSET_KEY }
              odd: { kind: anthropic, max_tokens_field: max_tokens, colour: blue }
            """, routes: """
              quick: { action: stream, provider: lcoal, model: m }
              nomodel: { action: stream, provider: keyed }
            """)
        let outcome = RuleSetLoader.load(yaml: yaml, path: "rules.yaml", fingerprint: "t", environment: ["PATH"])
        #expect(outcome.accepted == nil)
        #expect(outcome.diagnostics.map(\.description) == [
            #"rules.yaml:3:18: error: provider "local": unknown kind "opneai"; expected anthropic or openai (did you mean "openai"?)"#,
            #"rules.yaml:4:3: error: provider "bare": an openai provider needs a "base_url" (for example http://127.0.0.1:11434/v1)"#,
            #"rules.yaml:5:36: error: provider "keyed": base_url must start with http:// or https://, found "ftp://example""#,
            #"rules.yaml:5:66: error: provider "keyed": the environment variable LOCAL_TEST_UNSET_KEY is not set"#,
            #"rules.yaml:6:45: error: provider "odd": max_tokens_field is max_tokens or max_completion_tokens, for an openai provider"#,
            #"rules.yaml:6:57: error: provider "odd": unknown key "colour""#,
            #"rules.yaml:10:38: error: route "quick": unknown provider "lcoal"; the providers are anthropic, bare, keyed, local, odd (did you mean "local"?)"#,
            #"rules.yaml:11:3: error: route "nomodel": a route on provider "keyed" needs a "model""#,
        ])
    }
}

@Suite("Prompt caching per provider")
struct PromptCacheSettingTests {
    @Test("prompt_cache is on by default, false turns it off for an anthropic provider; anything else is a diagnostic at its place")
    func promptCache() throws {
        let yaml = providersYAML("""
              plain: { kind: anthropic }
              uncached: { kind: anthropic, prompt_cache: false }
            """, routes: "  quick: { action: stream }")
        let rules = try #require(RuleSetLoader.load(yaml: yaml, path: "rules.yaml", fingerprint: "t", environment: []).accepted)
        #expect(rules.providers["plain"]?.promptCache == true)
        #expect(rules.providers["uncached"]?.promptCache == false)
        let bad = providersYAML("""
              odd: { kind: anthropic, prompt_cache: sometimes }
              local: { kind: openai, base_url: "http://127.0.0.1:11434/v1", prompt_cache: false }
            """, routes: "  quick: { action: stream }")
        let outcome = RuleSetLoader.load(yaml: bad, path: "rules.yaml", fingerprint: "t", environment: [])
        #expect(outcome.diagnostics.map(\.description) == [
            #"rules.yaml:3:41: error: provider "odd": prompt_cache: expected true or false, found "sometimes""#,
            #"rules.yaml:4:79: error: provider "local": prompt_cache is for an anthropic provider (OpenAI-compatible servers cache by themselves)"#,
        ])
    }
}

@Suite("Provider keys go only where they should")
struct ProviderKeyTests {
    @Test("api_key_env may not name Switchboard's own settings; a key never goes over plain http beyond loopback")
    func keysStayHome() {
        let yaml = providersYAML("""
              a: { kind: openai, base_url: "https://api.example.com/v1", api_key_env: SWITCHBOARD_DATABASE }
              b: { kind: openai, base_url: "https://api.example.com/v1", api_key_env: DATABASE_URL }
              c: { kind: openai, base_url: "http://models.corp.example/v1", api_key_env: HOME }
              d: { kind: openai, base_url: "http://127.corp.example:8000/v1", api_key_env: HOME }
              e: { kind: openai, base_url: "http://127.0.0.1:11434/v1", api_key_env: HOME }
              f: { kind: openai, base_url: "http://[::1]:8000/v1", api_key_env: HOME }
              g: { kind: openai, base_url: "http://localhost:11434/v1", api_key_env: HOME }
              h: { kind: openai, base_url: "http://10.0.0.7/v1" }
            """, routes: """
              quick: { action: stream, provider: e, model: m }
            """)
        let outcome = RuleSetLoader.load(yaml: yaml, path: "rules.yaml", fingerprint: "t", environment: ["HOME", "SWITCHBOARD_DATABASE"])
        #expect(outcome.accepted == nil)
        #expect(outcome.diagnostics.map(\.description) == [
            #"rules.yaml:3:75: error: provider "a": api_key_env may not name SWITCHBOARD_DATABASE, one of Switchboard's own settings (its value would be sent to the provider as a key)"#,
            #"rules.yaml:4:75: error: provider "b": api_key_env may not name DATABASE_URL, one of Switchboard's own settings (its value would be sent to the provider as a key)"#,
            #"rules.yaml:5:32: error: provider "c": base_url would send the key in HOME over plain http to models.corp.example; use https, or http on loopback for a local model"#,
            #"rules.yaml:6:32: error: provider "d": base_url would send the key in HOME over plain http to 127.corp.example; use https, or http on loopback for a local model"#,
        ])
    }
}

@Suite("Prices in the rules file")
struct PriceRulesTests {
    @Test("per-model prices in USD per million tokens; cache prices default to the input price")
    func prices() throws {
        let yaml = providersYAML("""
              local:
                kind: openai
                base_url: "http://127.0.0.1:11434/v1"
                prices:
                  "llama3.1:8b": { input: 0, output: 0 }
                  gpt-4.1: { input: 2, output: 8, cache_read: 0.5 }
            """, routes: """
              quick: { action: stream, provider: local, model: "llama3.1:8b" }
            """)
        let rules = try #require(RuleSetLoader.load(yaml: yaml, path: "rules.yaml", fingerprint: "t").accepted)
        let prices = try #require(rules.providers["local"]?.prices)
        #expect(prices["llama3.1:8b"] == ModelPrice(input: 0, output: 0))
        #expect(prices["gpt-4.1"] == ModelPrice(input: 2, output: 8, cacheRead: 0.5, cacheWrite: 2))
        let cost = try #require(prices["gpt-4.1"]?.cost(input: 1_000_000, output: 500_000, cacheRead: 2_000_000))
        #expect(abs(cost - 7) < 1e-9, "2 + 4 + 1 dollars, found \(cost)")
    }

    @Test("a price needs input and output, non-negative numbers, and known keys")
    func diagnostics() {
        let yaml = providersYAML("""
              local:
                kind: openai
                base_url: "http://127.0.0.1:11434/v1"
                prices:
                  a: { input: 1 }
                  b: { input: -1, output: cheap }
                  c: { input: 1, output: 2, cached: 1 }
                  d: 3
            """, routes: """
              quick: { action: stream, provider: local, model: a }
            """)
        #expect(RuleSetLoader.load(yaml: yaml, path: "rules.yaml", fingerprint: "t").diagnostics.map(\.description) == [
            #"rules.yaml:7:7: error: provider "local": the price of a: missing "output" (USD per million tokens)"#,
            #"rules.yaml:8:19: error: provider "local": the price of b: input (USD per million tokens): must be at least 0, found -1"#,
            #"rules.yaml:8:31: error: provider "local": the price of b: output (USD per million tokens): expected a number, found "cheap""#,
            #"rules.yaml:9:33: error: provider "local": the price of c: unknown key "cached""#,
            #"rules.yaml:10:10: error: provider "local": the price of d: expected a mapping (key: value), found "3""#,
        ])
    }
}

@Suite("Route fallbacks in the rules file")
struct FallbackRulesTests {
    @Test("a route lists fallbacks in order; each needs a model and a known provider; advice has none")
    func fallbacks() throws {
        let good = providersYAML("""
              local: { kind: openai, base_url: "http://127.0.0.1:11434/v1" }
            """, routes: """
              quick: { action: stream, provider: local, model: m1, fallbacks: [{ model: claude-haiku-4-5 }, { provider: local, model: m2 }] }
            """)
        let rules = try #require(RuleSetLoader.load(yaml: good, path: "rules.yaml", fingerprint: "t").accepted)
        #expect(rules.routes["quick"]?.fallbacks == [RouteTarget(provider: nil, model: "claude-haiku-4-5"),
                                                     RouteTarget(provider: rules.providers["local"], model: "m2")])
        let bad = providersYAML("""
              local: { kind: openai, base_url: "http://127.0.0.1:11434/v1" }
            """, routes: """
              quick: { action: stream, provider: local, model: m1, fallbacks: [{ provider: lokal, model: m }, { provider: local }] }
              help: { action: advise, message: "Use the desktop client.", fallbacks: [{ model: m }] }
            """)
        #expect(RuleSetLoader.load(yaml: bad, path: "rules.yaml", fingerprint: "t").diagnostics.map(\.description) == [
            #"rules.yaml:7:80: error: route "quick": fallback 1: unknown provider "lokal"; the providers are anthropic, local (did you mean "local"?)"#,
            #"rules.yaml:7:99: error: route "quick": fallback 2: missing "model""#,
            #"rules.yaml:8:74: error: route "help": an advise route calls no model, so it has no fallbacks"#,
        ])
    }
}
