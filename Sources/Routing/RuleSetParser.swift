import ChatCore
import Yams

/// Turns rules YAML into a compiled `RuleSet`, collecting every problem with its line and column.
struct RuleSetParser: YAMLDiagnosing {
    let path: String
    var diagnostics: [Diagnostic] = []
    private var keywords = KeywordMatcher()
    private var routeNames: Set<String> = []
    private var providerNames: Set<String> = []

    /// The names of the environment's variables, to check each provider's `api_key_env`; `nil`: not checked.
    private let environment: Set<String>?
    /// The variables a provider's `api_key_env` may name, as whoever started the process allowed
    /// (`ProviderKeyVariables`); `nil`: not checked.
    private let readableKeyVariables: Set<String>?

    init(path: String, environment: Set<String>? = nil, readableKeyVariables: Set<String>? = nil) {
        self.path = path
        self.environment = environment
        self.readableKeyVariables = readableKeyVariables
    }

    static let topLevelKeys = ["version", "analyze", "providers", "levels", "routes", "rules", "examples", "review", "semantic"]
    static let semanticKeys = ["examples", "min_confidence", "rules_weight", "match_similarity", "neighbours", "regularization"]
    static let reviewKeys = ["outlier_factor", "min_samples", "levels"]
    static let reviewLimitKeys = ["max_tool_calls", "max_seconds"]
    static let providerKeys = ["kind", "base_url", "api_key_env", "max_tokens_field", "prices", "prompt_cache"]
    static let priceKeys = ["input", "output", "cache_read", "cache_write"]
    static let analyzeKeys = ["history", "scan_limit", "follow_up"]
    static let levelKeys = ["name", "max_score", "route", "estimated_seconds"]
    static let routeKeys = ["action", "provider", "model", "max_iterations", "message", "fallbacks"]
    static let fallbackKeys = ["provider", "model"]
    static let ruleKeys = ["id", "description", "when", "weight", "route", "decides"]
    static let conditionKeys = ["any_keywords", "all_keywords", "regex", "min_chars", "max_chars",
                                "min_messages", "max_messages", "all", "any", "not"]
    static let exampleKeys = ["query", "expect"]
    static let expectationKeys = ["level", "route", "score", "rules"]
    static let defaultScanLimit = 10_000
    /// The most text one analysis reads, whatever the file says.
    static let maxScanLimit = 100_000

    /// Parses and compiles; returns `nil` when any error was found (the diagnostics say which).
    mutating func parse(_ yaml: String, fingerprint: String) -> RuleSet? {
        guard let root = compose(yaml, expected: "a mapping with version, levels, routes and rules") else { return nil }
        guard let top = mapping(root, "the top level") else { return nil }
        checkKeys(top, allowed: Self.topLevelKeys, context: "top level")

        var schemaVersion = 1
        if let node = top["version"] {
            if let value = integer(node, "version"), value != 1 {
                error("unsupported version \(value); this Switchboard reads version 1", at: node)
            } else if let value = node.int { schemaVersion = value }
        } else {
            error("missing \"version: 1\" at the top level", at: root)
        }

        var history = 0
        var scanLimit = Self.defaultScanLimit
        var followUp: Condition?
        if let analyze = top["analyze"], let map = mapping(analyze, "analyze") {
            checkKeys(map, allowed: Self.analyzeKeys, context: "analyze")
            if let node = map["history"], let value = integer(node, "analyze.history", minimum: 0) { history = value }
            if let node = map["scan_limit"], let value = integer(node, "analyze.scan_limit", minimum: 1) {
                if value > Self.maxScanLimit {
                    error("analyze.scan_limit: at most \(Self.maxScanLimit) characters, found \(value)", at: node)
                } else {
                    scanLimit = value
                }
            }
            if let node = map["follow_up"] { followUp = parseCondition(node, context: "analyze.follow_up") }
        }

        let providers = parseProviders(top["providers"])
        providerNames = Set(top["providers"]?.mapping?.keys.compactMap(\.string) ?? [])
        let routes = parseRoutes(top["routes"], root: root, providers: providers)
        // Names of every declared route, valid or not, so a broken route is reported once, not at each use.
        routeNames = Set(top["routes"]?.mapping?.keys.compactMap(\.string) ?? [])
        let levels = parseLevels(top["levels"], root: root)
        let rules = parseRules(top["rules"])
        let examples = parseExamples(top["examples"], levels: levels)
        let review = parseReview(top["review"], levels: levels)
        let semantic = top["semantic"].flatMap { parseSemantic($0) }

        guard !diagnostics.hasErrors else { return nil }
        var rulesByKeyword: [Int: [Int]] = [:]
        var alwaysEvaluated: [Int] = []
        for (index, rule) in rules.enumerated() {
            if let triggers = rule.condition.triggers {
                for keyword in Set(triggers) { rulesByKeyword[keyword, default: []].append(index) }
            } else {
                alwaysEvaluated.append(index)
            }
        }
        return RuleSet(schemaVersion: schemaVersion, fingerprint: fingerprint, history: history, followUp: followUp,
                       scanLimit: scanLimit,
                       levels: levels, routes: routes, providers: providers, rules: rules, examples: examples, review: review, keywords: keywords,
                       rulesByKeyword: rulesByKeyword, alwaysEvaluated: alwaysEvaluated,
                       usesPrefilter: rules.contains { $0.condition.hasPrefilteredRegex }, path: path, semanticSettings: semantic)
    }

    /// `semantic: {examples: [FILE, …], min_confidence, rules_weight, match_similarity, neighbours, regularization}`.
    private mutating func parseSemantic(_ node: Node) -> SemanticSettings? {
        guard let map = mapping(node, "semantic") else { return nil }
        checkKeys(map, allowed: Self.semanticKeys, context: "semantic")
        var settings = SemanticSettings(location: location(node))
        if let list = map["examples"].flatMap({ sequence($0, "semantic.examples") }) {
            for item in list {
                if let file = string(item, "semantic.examples") { settings.exampleFiles.append(.init(path: file, location: location(item))) }
            }
        }
        func fraction(_ key: String, into value: inout Double) {
            guard let node = map[key], let number = number(node, "semantic.\(key)", minimum: 0) else { return }
            if number > 1 {
                error("semantic.\(key): a number from 0 to 1, found \(number)", at: node)
            } else {
                value = number
            }
        }
        fraction("min_confidence", into: &settings.minConfidence)
        fraction("rules_weight", into: &settings.rulesWeight)
        fraction("match_similarity", into: &settings.matchSimilarity)
        if let node = map["neighbours"], let value = integer(node, "semantic.neighbours", minimum: 0) {
            if value > 20 { error("semantic.neighbours: at most 20, found \(value)", at: node) } else { settings.neighbours = value }
        }
        if let node = map["regularization"], let value = number(node, "semantic.regularization", minimum: 0) {
            settings.regularization = value
        }
        return settings
    }

    // MARK: Sections

    /// `review:` `{outlier_factor, min_samples, levels: {NAME: {max_tool_calls, max_seconds}}}`, every key optional.
    private mutating func parseReview(_ node: Node?, levels: [Level]) -> ReviewSettings {
        var settings = ReviewSettings()
        guard let node, let map = mapping(node, "review") else { return settings }
        checkKeys(map, allowed: Self.reviewKeys, context: "review")
        if let factor = map["outlier_factor"], let value = number(factor, "review.outlier_factor", minimum: 1) { settings.outlierFactor = value }
        if let samples = map["min_samples"], let value = integer(samples, "review.min_samples", minimum: 1) { settings.minSamples = value }
        guard let limitsNode = map["levels"], let limits = mapping(limitsNode, "review.levels") else { return settings }
        let known = levels.map(\.name)
        for (name, keyNode, fields, context) in namedEntries(limits, kind: "review level", allowed: Self.reviewLimitKeys) {
            guard known.contains(name) else {
                error("\(context): no level is named \"\(name)\"" + Suggestion.didYouMean(name, in: known), at: keyNode)
                continue
            }
            settings.limits[name] = ReviewSettings.Limits(
                maxToolCalls: fields["max_tool_calls"].flatMap { integer($0, "\(context): max_tool_calls", minimum: 0) },
                maxSeconds: fields["max_seconds"].flatMap { number($0, "\(context): max_seconds", minimum: 0) })
        }
        return settings
    }

    private mutating func parseProviders(_ node: Node?) -> [String: Provider] {
        guard let node, let map = mapping(node, "providers") else { return [:] }
        var providers: [String: Provider] = [:]
        for (name, keyNode, fields, context) in namedEntries(map, kind: "provider", allowed: Self.providerKeys) {
            guard let kind: Provider.Kind = requiredCase("kind", of: fields, at: keyNode, context: context) else { continue }
            let baseURL = fields["base_url"].flatMap { string($0, "\(context): base_url") }
            if let baseURL, let urlNode = fields["base_url"], !(baseURL.hasPrefix("http://") || baseURL.hasPrefix("https://")) {
                error("\(context): base_url must start with http:// or https://, found \"\(baseURL)\"", at: urlNode)
            }
            if kind == .openai, baseURL == nil {
                error("\(context): an openai provider needs a \"base_url\" (for example http://127.0.0.1:11434/v1)", at: keyNode)
            }
            let apiKeyEnv = fields["api_key_env"].flatMap { string($0, "\(context): api_key_env") }
            if let apiKeyEnv, let envNode = fields["api_key_env"] {
                if Provider.isServerVariable(apiKeyEnv) {
                    error("\(context): api_key_env may not name \(apiKeyEnv), one of Switchboard's own settings (its value would be "
                          + "sent to the provider as a key)", at: envNode)
                } else if let readableKeyVariables, !readableKeyVariables.contains(apiKeyEnv) {
                    error("\(context): api_key_env names \(apiKeyEnv), which this server does not let providers read; whoever starts "
                          + "it allows that with \(ProviderKeyVariables.setting)=\(([apiKeyEnv] + readableKeyVariables.sorted()).joined(separator: ","))",
                          at: envNode)
                } else if let environment, !environment.contains(apiKeyEnv) {
                    error("\(context): the environment variable \(apiKeyEnv) is not set", at: envNode)
                }
                if let baseURL, let urlNode = fields["base_url"], let host = Provider.plainHTTPHost(baseURL),
                   !Loopback.isLoopback(host: host) {
                    error("\(context): base_url would send the key in \(apiKeyEnv) over plain http to \(host); use https, or http "
                          + "on loopback for a local model", at: urlNode)
                }
            }
            var maxTokensField: String?
            if let fieldNode = fields["max_tokens_field"], let field = string(fieldNode, "\(context): max_tokens_field") {
                if ["max_tokens", "max_completion_tokens"].contains(field), kind == .openai {
                    maxTokensField = field
                } else {
                    error("\(context): max_tokens_field is max_tokens or max_completion_tokens, for an openai provider", at: fieldNode)
                }
            }
            var promptCache = true
            if let cacheNode = fields["prompt_cache"], let flag = boolean(cacheNode, "\(context): prompt_cache") {
                if kind == .anthropic { promptCache = flag } else {
                    error("\(context): prompt_cache is for an anthropic provider (OpenAI-compatible servers cache by themselves)",
                          at: cacheNode)
                }
            }
            let prices = fields["prices"].map { parsePrices($0, context: context) } ?? [:]
            providers[name] = Provider(name: name, kind: kind, baseURL: baseURL, apiKeyEnv: apiKeyEnv, maxTokensField: maxTokensField,
                                       prices: prices, promptCache: promptCache)
        }
        return providers
    }

    /// `prices: {MODEL: {input: USD, output: USD, cache_read: USD, cache_write: USD}}`, per million tokens.
    private mutating func parsePrices(_ node: Node, context: String) -> [String: ModelPrice] {
        guard let map = mapping(node, "\(context): prices") else { return [:] }
        var prices: [String: ModelPrice] = [:]
        for (modelNode, value) in map {
            guard let model = string(modelNode, "\(context): prices") else { continue }
            let where_ = "\(context): the price of \(model)"
            guard let fields = mapping(value, where_) else { continue }
            checkKeys(fields, allowed: Self.priceKeys, context: where_)
            func amount(_ key: String) -> Double? {
                fields[key].flatMap { number($0, "\(where_): \(key) (USD per million tokens)", minimum: 0) }
            }
            let input = amount("input"), output = amount("output")
            guard let input, let output else {
                for key in ["input", "output"] where fields[key] == nil {
                    error("\(where_): missing \"\(key)\" (USD per million tokens)", at: modelNode)
                }
                continue
            }
            prices[model] = ModelPrice(input: input, output: output, cacheRead: amount("cache_read"), cacheWrite: amount("cache_write"))
        }
        return prices
    }

    private mutating func parseRoutes(_ node: Node?, root: Node, providers: [String: Provider]) -> [String: Route] {
        guard let node else {
            error("missing \"routes\": define at least one route", at: root)
            return [:]
        }
        guard let map = mapping(node, "routes") else { return [:] }
        var routes: [String: Route] = [:]
        for (name, keyNode, fields, context) in namedEntries(map, kind: "route", allowed: Self.routeKeys) {
            guard let action: Route.Action = requiredCase("action", of: fields, at: keyNode, context: context) else { continue }
            let model = fields["model"].flatMap { string($0, "\(context): model") }
            let provider = fields["provider"].flatMap { string($0, "\(context): provider") }
            if let provider, let providerNode = fields["provider"] { checkProvider(provider, at: providerNode, context: context) }
            var fallbacks: [RouteTarget] = []
            if let node = fields["fallbacks"], let items = sequence(node, "\(context): fallbacks") {
                for (index, item) in items.enumerated() {
                    let where_ = "\(context): fallback \(index + 1)"
                    guard let target = mapping(item, where_) else { continue }
                    checkKeys(target, allowed: Self.fallbackKeys, context: where_)
                    let name = target["provider"].flatMap { string($0, "\(where_): provider") }
                    if let name, let nameNode = target["provider"] { checkProvider(name, at: nameNode, context: where_) }
                    guard let modelNode = target["model"] else {
                        error("\(where_): missing \"model\"", at: item)
                        continue
                    }
                    guard let fallbackModel = string(modelNode, "\(where_): model") else { continue }
                    fallbacks.append(RouteTarget(provider: name.flatMap { providers[$0] }, model: fallbackModel))
                }
                if action == .advise, !items.isEmpty { error("\(context): an advise route calls no model, so it has no fallbacks", at: node) }
            }
            // Only the built-in provider has a default model (the server's).
            if action == .stream, model == nil, let provider, provider != Provider.builtIn {
                error("\(context): a route on provider \"\(provider)\" needs a \"model\"", at: keyNode)
            }
            let message = fields["message"].flatMap { string($0, "\(context): message") }
            let maxIterations = fields["max_iterations"].flatMap { integer($0, "\(context): max_iterations", minimum: 1) }
            // A stream route without a model uses the server's default model.
            if action == .advise, message == nil {
                error("\(context): an advise route needs a \"message\" to show the user", at: keyNode)
            }
            routes[name] = Route(name: name, action: action, provider: provider.flatMap { providers[$0] }, model: model, maxIterations: maxIterations,
                                 message: message, fallbacks: fallbacks)
        }
        if routes.isEmpty, map.count == 0 { error("\"routes\" is empty: define at least one route", at: node) }
        return routes
    }

    /// A provider named by a route or a fallback must be declared (valid or not, so a broken one is reported once).
    private mutating func checkProvider(_ name: String, at node: Node, context: String) {
        guard name != Provider.builtIn, !providerNames.contains(name) else { return }
        let known = [Provider.builtIn] + providerNames.sorted()
        error("\(context): unknown provider \"\(name)\"; the providers are \(known.joined(separator: ", "))"
              + Suggestion.didYouMean(name, in: known), at: node)
    }

    private mutating func parseLevels(_ node: Node?, root: Node) -> [Level] {
        guard let node else {
            error("missing \"levels\": define at least one level", at: root)
            return []
        }
        guard let items = sequence(node, "levels") else { return [] }
        if items.isEmpty { error("\"levels\" is empty: define at least one level", at: node) }
        var levels: [Level] = []
        var names: Set<String> = []
        for (index, item) in items.enumerated() {
            guard let fields = mapping(item, "level \(index + 1)") else { continue }
            checkKeys(fields, allowed: Self.levelKeys, context: "level \(index + 1)")
            guard let nameNode = fields["name"], let name = string(nameNode, "level \(index + 1): name") else {
                if fields["name"] == nil { error("level \(index + 1): missing \"name\"", at: item) }
                continue
            }
            let context = "level \"\(name)\""
            if !names.insert(name).inserted { error("\(context): the name is used by another level", at: nameNode) }
            let isLast = index == items.count - 1
            var maxScore: Double?
            if let scoreNode = fields["max_score"] {
                maxScore = number(scoreNode, "\(context): max_score")
                if isLast {
                    error("\(context): the last level takes every higher score, so it must not set max_score", at: scoreNode)
                } else if let maxScore, let previous = levels.last?.maxScore, maxScore <= previous {
                    error("\(context): max_score \(maxScore.compactText) must be greater than the previous level's \(previous.compactText)",
                          at: scoreNode)
                }
            } else if !isLast {
                error("\(context): missing \"max_score\" (only the last level may omit it)", at: nameNode)
            }
            var routeName = ""
            if let routeNode = fields["route"], let value = string(routeNode, "\(context): route") {
                routeName = value
                checkRouteExists(value, context: context, at: routeNode)
            } else if fields["route"] == nil {
                error("\(context): missing \"route\"", at: nameNode)
            }
            let seconds = fields["estimated_seconds"].flatMap { number($0, "\(context): estimated_seconds", minimum: 0) }
            levels.append(Level(name: name, maxScore: maxScore, route: routeName, estimatedSeconds: seconds ?? 0,
                                maxScoreLocation: fields["max_score"].map(location),
                                estimatedSecondsLocation: fields["estimated_seconds"].map(location)))
        }
        return levels
    }

    private mutating func parseRules(_ node: Node?) -> [Rule] {
        guard let node else { return [] }
        guard let items = sequence(node, "rules") else { return [] }
        var rules: [Rule] = []
        var ids: Set<String> = []
        for (index, item) in items.enumerated() {
            guard let fields = mapping(item, "rule \(index + 1)") else { continue }
            guard let idNode = fields["id"], let id = string(idNode, "rule \(index + 1): id") else {
                if fields["id"] == nil { error("rule \(index + 1): missing \"id\"", at: item) }
                continue
            }
            let context = "rule \"\(id)\""
            checkKeys(fields, allowed: Self.ruleKeys, context: context)
            if !ids.insert(id).inserted { error("\(context): the id is used by another rule", at: idNode) }
            let description = fields["description"].flatMap { string($0, "\(context): description") }
            let weight = fields["weight"].flatMap { number($0, "\(context): weight") } ?? 0
            var route: String?
            if let routeNode = fields["route"], let value = string(routeNode, "\(context): route") {
                route = value
                checkRouteExists(value, context: context, at: routeNode)
            }
            guard let whenNode = fields["when"] else {
                error("\(context): missing \"when\" (the condition that makes it match)", at: idNode)
                continue
            }
            guard let condition = parseCondition(whenNode, context: context) else { continue }
            if fields["weight"] == nil, route == nil, fields["decides"] == nil {
                warning("\(context): has neither a weight nor a route, so matching it changes nothing", at: idNode)
            }
            let decides = fields["decides"].flatMap { boolean($0, "\(context): decides") } ?? false
            rules.append(Rule(id: id, description: description, weight: weight, route: route, location: location(item),
                              weightLocation: fields["weight"].map(location), condition: condition, decides: decides))
        }
        return rules
    }

    private mutating func parseCondition(_ node: Node, context: String) -> Condition? {
        guard let fields = mapping(node, "\(context): condition") else { return nil }
        if fields.count == 0 {
            error("\(context): empty condition; use one of \(Self.conditionKeys.joined(separator: ", "))", at: node)
            return nil
        }
        var parts: [Condition] = []
        var failed = false
        for (keyNode, value) in fields {
            let key = keyNode.string ?? ""
            guard Self.conditionKeys.contains(key) else {
                error("\(context): unknown condition \"\(key)\"" + Suggestion.didYouMean(key, in: Self.conditionKeys),
                      at: keyNode)
                failed = true
                continue
            }
            guard let part = parseConditionValue(key, value, context: context) else {
                failed = true
                continue
            }
            parts.append(part)
        }
        if failed { return nil }
        // Several conditions in one mapping must all hold.
        return parts.count == 1 ? parts[0] : .all(parts)
    }

    private mutating func parseConditionValue(_ key: String, _ value: Node, context: String) -> Condition? {
        switch key {
        case "any_keywords", "all_keywords":
            guard let ids = parseKeywords(value, context: "\(context): \(key)") else { return nil }
            return key == "any_keywords" ? .anyKeywords(ids) : .allKeywords(ids)
        case "regex":
            guard let pattern = string(value, "\(context): regex") else { return nil }
            do {
                return .regex(try CompiledRegex(pattern: pattern))
            } catch {
                switch error {
                case .tooLong(let length):
                    self.error("\(context): regex is \(length) characters long; the limit is \(CompiledRegex.maxPatternLength)",
                               at: value)
                case .nestedQuantifier:
                    self.error("\(context): regex repeats a group that itself repeats without bound, which can "
                               + "backtrack catastrophically; rewrite it without the nested quantifier", at: value)
                case .quantifiedAlternation:
                    self.error("\(context): regex repeats an alternation without bound, like (a|aa)+, which can "
                               + "backtrack catastrophically; use a character class ([ab]+) or repeat each branch", at: value)
                case .repeatedVariableGroup(let times):
                    self.error("\(context): regex repeats \(times) times a group whose length varies, like (a?){20} or (.*a){12}, "
                               + "which can backtrack catastrophically; repeat it at most \(CompiledRegex.maxVariableRepeats) times "
                               + "(\(CompiledRegex.maxUnboundedRepeats) when it holds * or +), or make its length fixed", at: value)
                case .invalid(let reason):
                    self.error("\(context): regex does not compile: \(reason)", at: value)
                }
                return nil
            }
        case "min_chars", "max_chars", "min_messages", "max_messages":
            guard let limit = integer(value, "\(context): \(key)", minimum: 0) else { return nil }
            switch key {
            case "min_chars": return .minChars(limit)
            case "max_chars": return .maxChars(limit)
            case "min_messages": return .minMessages(limit)
            default: return .maxMessages(limit)
            }
        case "all", "any":
            guard let items = sequence(value, "\(context): \(key)") else { return nil }
            if items.isEmpty {
                error("\(context): \"\(key)\" needs at least one condition", at: value)
                return nil
            }
            var parts: [Condition] = []
            for item in items {
                if let part = parseCondition(item, context: context) { parts.append(part) }
            }
            guard parts.count == items.count else { return nil }
            return key == "all" ? .all(parts) : .any(parts)
        default: // "not"
            return parseCondition(value, context: context).map { .not($0) }
        }
    }

    private mutating func parseKeywords(_ node: Node, context: String) -> [Int]? {
        let items: [Node]
        if case .scalar = node {
            items = [node]
        } else if let list = sequence(node, context) {
            items = list
        } else {
            return nil
        }
        if items.isEmpty {
            error("\(context): the list is empty", at: node)
            return nil
        }
        var ids: [Int] = []
        for item in items {
            guard let keyword = string(item, context) else { return nil }
            guard let id = keywords.intern(keyword) else {
                error("\(context): keyword \"\(keyword)\" has no letters or digits to match; use regex for symbols", at: item)
                return nil
            }
            let ignored = keyword.unicodeScalars.filter {
                !WordTokenizer.isWordScalar($0) && !$0.properties.isWhitespace && $0 != "-" && $0 != "'" && $0 != "\u{2019}"
            }
            if !ignored.isEmpty {
                warning("\(context): keyword \"\(keyword)\" matches as \"\(keywords.phrases[id].joined(separator: " "))\": "
                        + "symbols are not matched; use regex to match them", at: item)
            }
            if !ids.contains(id) { ids.append(id) }
        }
        return ids
    }

    private mutating func parseExamples(_ node: Node?, levels: [Level]) -> [Example] {
        guard let node, let items = sequence(node, "examples") else { return [] }
        var examples: [Example] = []
        for (index, item) in items.enumerated() {
            let context = "example \(index + 1)"
            guard let fields = mapping(item, context) else { continue }
            checkKeys(fields, allowed: Self.exampleKeys, context: context)
            guard let queryNode = fields["query"], let query = string(queryNode, "\(context): query") else {
                if fields["query"] == nil { error("\(context): missing \"query\"", at: item) }
                continue
            }
            var expectation = Example.Expectation()
            guard let expectNode = fields["expect"], let expect = mapping(expectNode, "\(context): expect") else {
                if fields["expect"] == nil { error("\(context): missing \"expect\"", at: item) }
                continue
            }
            checkKeys(expect, allowed: Self.expectationKeys, context: "\(context): expect")
            if let levelNode = expect["level"], let level = string(levelNode, "\(context): expect.level") {
                if !levels.contains(where: { $0.name == level }) {
                    error("\(context): unknown level \"\(level)\"" + Suggestion.didYouMean(level, in: levels.map(\.name)),
                          at: levelNode)
                }
                expectation.level = level
            }
            if let routeNode = expect["route"], let route = string(routeNode, "\(context): expect.route") {
                checkRouteExists(route, context: context, at: routeNode)
                expectation.route = route
            }
            if let scoreNode = expect["score"] { expectation.score = number(scoreNode, "\(context): expect.score") }
            if let rulesNode = expect["rules"], let list = sequence(rulesNode, "\(context): expect.rules") {
                expectation.rules = list.compactMap { string($0, "\(context): expect.rules") }
            }
            let mark = item.mark
            examples.append(Example(query: query, expect: expectation, line: mark?.line ?? 0, column: mark?.column ?? 0))
        }
        return examples
    }

    // MARK: Typed access with diagnostics

    private mutating func checkRouteExists(_ name: String, context: String, at node: Node) {
        guard !routeNames.contains(name), !routeNames.isEmpty else { return }
        error("\(context): unknown route \"\(name)\"" + Suggestion.didYouMean(name, in: routeNames.sorted()), at: node)
    }
}
