import ChatCore

/// Routing advice and its reasons: the body of `POST /mcp/chat/analyze` and of `switchboard analyze --json`.
public struct AnalysisReport: Encodable, Sendable {
    public struct Matched: Encodable, Sendable {
        public let id: String
        @ExplicitNull public private(set) var description: String?
        public let weight: Double
        @ExplicitNull public private(set) var route: String?
        public let matches: [Span]
    }

    public struct Span: Encodable, Sendable {
        public let text: String
        public let start: Int
        public let end: Int
        public let messageIndex: Int
    }

    /// The semantic stage's part: its probabilities, the nearest labelled examples and who decided.
    public struct Semantic: Encodable, Sendable {
        public struct Neighbour: Encodable, Sendable {
            public let text: String
            public let level: String
            public let similarity: Double
            public let source: String
        }

        public let model: String
        /// `rules`, `semantic`, `example`, `forced_route`, `deciding_rule` or `not_read`.
        public let decidedBy: String
        public let level: String
        public let rulesLevel: String
        @ExplicitNull public private(set) var stageLevel: String?
        @ExplicitNull public private(set) var rule: String?
        /// By level, rounded to thousandths; empty when the text was not read.
        public let probabilities: [String: Double]
        public let nearest: [Neighbour]
    }

    public let complexity: String
    public let score: Double
    public let route: String
    public let action: RouteAction
    @ExplicitNull public private(set) var provider: String?
    @ExplicitNull public private(set) var model: String?
    @ExplicitNull public private(set) var maxIterations: Int?
    public let estimatedSeconds: Double
    @ExplicitNull public private(set) var message: String?
    @ExplicitNull public private(set) var routeForcedBy: String?
    public let matchedRules: [Matched]
    public let rulesVersion: String
    public let analysisMicros: Int
    /// `nil` (written `null`) when the rules have no semantic stage serving.
    @ExplicitNull public private(set) var semantic: Semantic?

    /// `defaultModel` names the model of a stream route that names none.
    public init(_ analysis: Analysis, rulesVersion: String, micros: Int, defaultModel: String) {
        complexity = analysis.level.name
        score = analysis.score
        route = analysis.route.name
        action = analysis.route.action
        switch analysis.route.action {
        case .stream:
            provider = analysis.route.providerName
            model = analysis.route.model ?? defaultModel
            maxIterations = analysis.route.maxIterations
        case .advise:
            provider = nil
            model = nil
            maxIterations = nil
        }
        estimatedSeconds = analysis.level.estimatedSeconds
        message = analysis.route.message
        routeForcedBy = analysis.routeForcedBy
        matchedRules = analysis.matchedRules.map { rule in
            Matched(id: rule.id, description: rule.description, weight: rule.weight, route: rule.route,
                    matches: rule.matches.map { Span(text: $0.text, start: $0.start, end: $0.end, messageIndex: $0.messageIndex) })
        }
        self.rulesVersion = rulesVersion
        analysisMicros = micros
        semantic = analysis.semantic.map { outcome in
            let verdict = outcome.verdict
            return Semantic(model: analysis.modelName ?? "", decidedBy: outcome.decidedBy.rawValue, level: outcome.level,
                            rulesLevel: outcome.rulesLevel, stageLevel: outcome.stageLevel, rule: outcome.rule,
                            probabilities: Dictionary((verdict?.probabilities ?? []).map { ($0.level, Self.thousandths($0.probability)) },
                                                      uniquingKeysWith: { first, _ in first }),
                            nearest: (verdict?.nearest ?? []).map {
                                Semantic.Neighbour(text: $0.text, level: $0.level, similarity: Self.thousandths($0.similarity), source: $0.source)
                            })
        }
    }

    /// A probability or similarity as the report writes it.
    static func thousandths(_ value: Double) -> Double {
        guard value.isFinite else { return 0 }
        return (value * 1000).rounded() / 1000
    }

}

extension AnalysisReport {
    /// The report as JSON, its keys in the order `JSONEncoder` with `.sortedKeys` writes them: the body of
    /// `POST /mcp/chat/analyze`, written by hand because Foundation's encoder took a quarter of that request's CPU
    /// (Docs/BENCHMARKS.md, "Per request"). Tested against the encoder's output on the labelled set's chats.
    public var jsonBytes: [UInt8] {
        var json = JSONWriter(capacity: 256 + matchedRules.count * 160)
        json.raw("{\"action\":")
        json.string(action.rawValue)
        json.field("analysisMicros", analysisMicros)
        json.field("complexity", complexity)
        json.field("estimatedSeconds", estimatedSeconds)
        json.key("matchedRules")
        json.raw("[")
        for (index, rule) in matchedRules.enumerated() {
            if index > 0 { json.raw(",") }
            json.raw("{\"description\":")
            if let description = rule.description { json.string(description) } else { json.raw("null") }
            json.field("id", rule.id)
            json.key("matches")
            json.raw("[")
            for (position, span) in rule.matches.enumerated() {
                if position > 0 { json.raw(",") }
                json.raw("{\"end\":")
                json.integer(span.end)
                json.field("messageIndex", span.messageIndex)
                json.field("start", span.start)
                json.field("text", span.text)
                json.raw("}")
            }
            json.raw("]")
            json.field("route", orNull: rule.route)
            json.field("weight", rule.weight)
            json.raw("}")
        }
        json.raw("]")
        json.field("maxIterations", orNull: maxIterations)
        json.field("message", orNull: message)
        json.field("model", orNull: model)
        json.field("provider", orNull: provider)
        json.field("route", route)
        json.field("routeForcedBy", orNull: routeForcedBy)
        json.field("rulesVersion", rulesVersion)
        json.field("score", score)
        json.key("semantic")
        if let semantic {
            json.raw("{\"decidedBy\":")
            json.string(semantic.decidedBy)
            json.field("level", semantic.level)
            json.field("model", semantic.model)
            json.key("nearest")
            json.raw("[")
            for (index, neighbour) in semantic.nearest.enumerated() {
                if index > 0 { json.raw(",") }
                json.raw("{\"level\":")
                json.string(neighbour.level)
                json.field("similarity", neighbour.similarity)
                json.field("source", neighbour.source)
                json.field("text", neighbour.text)
                json.raw("}")
            }
            json.raw("]")
            json.key("probabilities")
            json.raw("{")
            for (index, level) in semantic.probabilities.keys.sorted().enumerated() {
                if index > 0 { json.raw(",") }
                json.string(level)
                json.raw(":")
                json.raw(semantic.probabilities[level]!.compactText)
            }
            json.raw("}")
            json.field("rule", orNull: semantic.rule)
            json.field("rulesLevel", semantic.rulesLevel)
            json.field("stageLevel", orNull: semantic.stageLevel)
            json.raw("}")
        } else {
            json.raw("null")
        }
        json.raw("}")
        return json.bytes
    }
}
