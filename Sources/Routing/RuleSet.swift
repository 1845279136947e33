import ChatCore

/// A validated, compiled rules file: what the analyzer runs on. Immutable once built.
public struct RuleSet: Sendable {
    /// The schema version the file declared (`version: 1`).
    public let schemaVersion: Int
    /// Content fingerprint (`sha256:…`) set by whoever read the bytes; identifies this rule set in answers.
    public let fingerprint: String
    /// How many earlier user turns join the last one.
    public let history: Int
    /// When the last user turn matches this, it is a follow-up ("and for marketing?"): one more earlier user
    /// turn joins it, so the follow-up is judged with what it follows.
    let followUp: Condition?
    /// Matching looks at no more than this many UTF-16 units of text; longer text is cut for matching only.
    public let scanLimit: Int
    public let levels: [Level]
    public let routes: [String: Route]
    /// The providers the file defines (the built-in `anthropic` is not listed unless the file redefines it).
    public let providers: [String: Provider]
    public let rules: [Rule]
    public let examples: [Example]
    /// How `rules review` finds chats routed too low by their cost (the file's optional `review:` section).
    public let review: ReviewSettings
    let keywords: KeywordMatcher
    /// Rules that can only match when one of their keywords occurs, by keyword id; the rest are `alwaysEvaluated`.
    let rulesByKeyword: [Int: [Int]]
    let alwaysEvaluated: [Int]
    /// Whether any regex has a prefilter, so the analyzer folds the text only when it helps.
    let usesPrefilter: Bool

    /// Where the source came from, for messages (`rules.yaml`, `<embedded>`).
    public let path: String

    /// The file's `semantic:` section, when it has one.
    public let semanticSettings: SemanticSettings?
    /// The semantic stage the loader trained for these rules; `nil` when the file has none or it could not be had
    /// (`semanticStatus` says why).
    public internal(set) var semantic: SemanticStage? = nil
    public internal(set) var semanticStatus: SemanticStatus = .notConfigured
}

/// The `review:` section: when a chat used so many more tool calls or so much more time than its level's that it
/// was routed too low. A level with `limits` is judged by them; any other by its own chats, past `outlierFactor`
/// times their 90th percentile once there are `minSamples` completed ones.
public struct ReviewSettings: Sendable, Hashable {
    public struct Limits: Sendable, Hashable {
        public var maxToolCalls: Int?
        public var maxSeconds: Double?

        public init(maxToolCalls: Int? = nil, maxSeconds: Double? = nil) {
            self.maxToolCalls = maxToolCalls
            self.maxSeconds = maxSeconds
        }
    }

    public var outlierFactor: Double = 2
    public var minSamples: Int = 10
    /// By level name.
    public var limits: [String: Limits] = [:]

    public init(outlierFactor: Double = 2, minSamples: Int = 10, limits: [String: Limits] = [:]) {
        self.outlierFactor = outlierFactor
        self.minSamples = minSamples
        self.limits = limits
    }
}

/// A complexity level: the first whose `maxScore` is at least the score wins.
public struct Level: Sendable, Hashable {
    public let name: String
    /// `nil` on the last level, which takes every score above the others.
    public let maxScore: Double?
    public let route: String
    public let estimatedSeconds: Double
    /// Where `max_score` is written, for tools that suggest a new value.
    public let maxScoreLocation: SourceLocation?
    /// Where `estimated_seconds` is written, for calibration's suggestions.
    public let estimatedSecondsLocation: SourceLocation?
}

/// What to do with a chat that lands on a route.
public struct Route: Sendable, Hashable {
    public typealias Action = RouteAction

    public let name: String
    public let action: Action
    /// The provider it streams on, resolved from the file's `providers:`; `nil`: the built-in `anthropic` (the
    /// server's own settings).
    public let provider: Provider?
    public let model: String?
    public let maxIterations: Int?
    public let message: String?
    /// Where the chat goes, in order, when the route's own provider fails before its first byte.
    public let fallbacks: [RouteTarget]

    /// The name of the provider it streams on.
    public var providerName: String { provider?.name ?? Provider.builtIn }
}

/// A provider and model a route may fall back to.
public struct RouteTarget: Sendable, Hashable {
    /// `nil`: the built-in `anthropic` provider.
    public let provider: Provider?
    public let model: String

    public init(provider: Provider?, model: String) {
        self.provider = provider
        self.model = model
    }

    public var providerName: String { provider?.name ?? Provider.builtIn }
}

/// One scoring rule: when its condition holds, its weight joins the score and it may force a route.
public struct Rule: Sendable {
    public let id: String
    public let description: String?
    public let weight: Double
    /// A route this rule forces when it matches, overriding the level's route.
    public let route: String?
    /// Where the rule starts, and where its `weight` is written (`nil` when it has none), for tools that
    /// suggest a new weight.
    public let location: SourceLocation
    public let weightLocation: SourceLocation?
    let condition: Condition
    /// When it matches, the rules decide the level, whatever the semantic stage says (traps, hard limits).
    public var decides: Bool = false
}

/// A rule's condition, compiled: keywords are ids into the rule set's one keyword matcher.
indirect enum Condition: Sendable {
    /// Keyword ids of which at least one occurs whenever the condition holds; `nil` when there is no such set.
    var triggers: [Int]? {
        switch self {
        case .anyKeywords(let ids): return ids
        case .allKeywords(let ids): return ids.first.map { [$0] }
        case .all(let parts): return parts.compactMap(\.triggers).min { $0.count < $1.count }
        case .any(let parts):
            var union: [Int] = []
            for part in parts {
                guard let triggers = part.triggers else { return nil }
                union.append(contentsOf: triggers)
            }
            return union
        case .regex, .minChars, .maxChars, .minMessages, .maxMessages, .not: return nil
        }
    }

    var hasPrefilteredRegex: Bool {
        switch self {
        case .regex(let regex): return regex.requirement != nil
        case .all(let parts), .any(let parts): return parts.contains { $0.hasPrefilteredRegex }
        case .not(let part): return part.hasPrefilteredRegex
        default: return false
        }
    }

    case anyKeywords([Int])
    case allKeywords([Int])
    case regex(CompiledRegex)
    case minChars(Int)
    case maxChars(Int)
    case minMessages(Int)
    case maxMessages(Int)
    case all([Condition])
    case any([Condition])
    case not(Condition)
}

/// An example query checked on every load; a failing example rejects the file.
public struct Example: Sendable {
    public struct Expectation: Sendable {
        public var level: String?
        public var route: String?
        public var score: Double?
        /// Exactly these rules match (order ignored).
        public var rules: [String]?
    }

    public let query: String
    public let expect: Expectation
    /// Where the example sits in the file, for failure messages.
    public let line: Int
    public let column: Int
}
