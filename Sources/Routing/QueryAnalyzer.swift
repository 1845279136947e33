/// The chat as the analyzer sees it: each message's role and its text.
public struct AnalysisInput: Sendable {
    public struct Message: Sendable {
        public var isUser: Bool
        /// The message's text: its string content, or its text blocks joined with newlines.
        public var text: String

        public init(isUser: Bool, text: String) {
            self.isUser = isUser
            self.text = text
        }
    }

    public var messages: [Message]

    public init(messages: [Message]) {
        self.messages = messages
    }

    /// A single user turn, as the CLI and the rules examples analyse it.
    public init(query: String) {
        self.messages = [Message(isUser: true, text: query)]
    }
}

/// The analyzer's verdict and its reasons.
public struct Analysis: Sendable {
    /// The same analysis on `route` instead, chosen by the request (`routeForcedBy: "request"`).
    public func routed(to route: Route) -> Analysis {
        Analysis(level: level, score: score, route: route, routeForcedBy: "request", matchedRules: matchedRules,
                 analyzedCharacters: analyzedCharacters, semantic: semantic, modelName: modelName)
    }

    /// The level decided: the rules', or the semantic stage's where it decided (`semantic.decidedBy`).
    public let level: Level
    /// The rules' score (the semantic stage adds none).
    public let score: Double
    public let route: Route
    /// The rule that forced the route, when one did.
    public let routeForcedBy: String?
    public let matchedRules: [RuleMatch]
    /// Length of the analysed text in Unicode scalars.
    public let analyzedCharacters: Int
    /// What the semantic stage made of the chat and who decided; `nil` without the stage.
    public var semantic: SemanticOutcome? = nil

    /// The level the rules alone gave.
    public var rulesLevel: String { semantic?.rulesLevel ?? level.name }
    /// The semantic stage's embedding model, when it ran.
    public var modelName: String? = nil
}

/// A rule that matched and the text it matched on.
public struct RuleMatch: Sendable, Hashable {
    public let id: String
    public let description: String?
    public let weight: Double
    public let route: String?
    public let matches: [TextMatch]
}

/// A span of matched text. Offsets are UTF-16 units into the message's text, as JavaScript indexes strings.
public struct TextMatch: Sendable, Hashable {
    public let text: String
    public let start: Int
    public let end: Int
    /// Index of the message in the request's `messages`.
    public let messageIndex: Int
}

/// Classifies a chat by complexity with a `RuleSet`. Pure: values in, values out.
public struct QueryAnalyzer: Sendable {
    /// Text joined from several turns is separated by this, so no phrase spans two turns.
    static let turnSeparator = "\n\n"

    public let rules: RuleSet

    public init(rules: RuleSet) {
        self.rules = rules
    }

    /// Analyses the last user turn (with `history` earlier user turns, and one more when the last turn is a
    /// follow-up); `nil` when no user turn has text.
    public func analyze(_ input: AnalysisInput) -> Analysis? {
        guard let (text, segments) = analysedText(of: input) else { return nil }
        let scanLength = min(text.utf16.count, rules.scanLimit)
        let tokens = WordTokenizer.tokens(in: text, limit: scanLength)
        var keywordHits: [Int: [Range<Int>]] = [:]
        for hit in rules.keywords.hits(in: tokens) {
            keywordHits[hit.keyword, default: []].append(hit.start..<hit.end)
        }
        // Only rules that can match: those whose keywords occur, and those that do not depend on keywords.
        var candidates = rules.alwaysEvaluated
        for keyword in keywordHits.keys {
            if let ruleIndices = rules.rulesByKeyword[keyword] { candidates.append(contentsOf: ruleIndices) }
        }
        if candidates.count != rules.alwaysEvaluated.count {
            candidates.sort()
        }
        var facts = Facts(text: text, scanLength: scanLength, characters: text.unicodeScalars.count,
                          messages: input.messages.count, keywordHits: keywordHits,
                          folded: rules.usesPrefilter ? FoldedText(text, limit: scanLength) : nil)

        var score = 0.0
        var forcedRoute: (rule: String, route: String)?
        /// The first matching rule with `decides: true`: the rules' level stands.
        var decidingRule: String?
        var matched: [RuleMatch] = []
        var spans: [Range<Int>] = []
        var previous = -1
        for index in candidates where index != previous {
            previous = index
            let rule = rules.rules[index]
            spans.removeAll(keepingCapacity: true)
            guard evaluate(rule.condition, &facts, &spans) else { continue }
            score += rule.weight
            if forcedRoute == nil, let route = rule.route { forcedRoute = (rule.id, route) }
            if decidingRule == nil, rule.decides { decidingRule = rule.id }
            matched.append(RuleMatch(id: rule.id, description: rule.description, weight: rule.weight, route: rule.route,
                                     matches: textMatches(spans, in: text, segments: segments)))
        }
        let rulesLevel = rules.levels.first { ($0.maxScore ?? .infinity) >= score } ?? rules.levels[rules.levels.count - 1]
        var level = rulesLevel
        var semantic: SemanticOutcome?
        if let stage = rules.semantic {
            let outcome = stage.decide(text, rulesLevel: rulesLevel.name, rulesMatched: !matched.isEmpty, forcedBy: forcedRoute?.rule,
                                       decidingRule: decidingRule)
            if let decided = rules.levels.first(where: { $0.name == outcome.level }) { level = decided }
            semantic = outcome
        }
        let routeName = forcedRoute?.route ?? level.route
        return Analysis(level: level, score: score, route: rules.routes[routeName]!, routeForcedBy: forcedRoute?.rule,
                        matchedRules: matched, analyzedCharacters: facts.characters, semantic: semantic, modelName: rules.semantic?.embeddings.name)
    }

    /// The text the analyzer reads of `input` (the last user turn, joined with the turns it follows up), as the
    /// semantic stage learns it; `nil` when no user turn has text.
    public func analysedText(_ input: AnalysisInput) -> String? {
        analysedText(of: input)?.0
    }

    // MARK: Internals

    /// The time all regexes of one analysis may take together; a match still running then does not count.
    static let regexBudget: Duration = .milliseconds(100)

    private struct Facts {
        let text: String
        let scanLength: Int
        let characters: Int
        let messages: Int
        let keywordHits: [Int: [Range<Int>]]
        let folded: FoldedText?
        /// Set when the first regex runs.
        var regexDeadline: ContinuousClock.Instant?
    }

    /// Where each joined turn starts in the analysed text.
    private struct Segment {
        let start: Int
        let messageIndex: Int
    }

    private func analysedText(of input: AnalysisInput) -> (String, [Segment])? {
        let userTurns = input.messages.indices.reversed().filter { input.messages[$0].isUser && !input.messages[$0].text.isEmpty }
        guard let last = userTurns.first else { return nil }
        var count = rules.history + 1
        if count < userTurns.count, isFollowUp(input.messages[last].text, messages: input.messages.count) { count += 1 }
        let turns = userTurns.prefix(count)
        if turns.count == 1 {
            return (input.messages[last].text, [Segment(start: 0, messageIndex: last)])
        }
        var text = ""
        var segments: [Segment] = []
        for index in turns.reversed() {
            if !text.isEmpty { text += Self.turnSeparator }
            segments.append(Segment(start: text.utf16.count, messageIndex: index))
            text += input.messages[index].text
        }
        return (text, segments)
    }

    /// Whether the last user turn, on its own, matches `analyze.follow_up`.
    private func isFollowUp(_ text: String, messages: Int) -> Bool {
        guard let condition = rules.followUp else { return false }
        let scanLength = min(text.utf16.count, rules.scanLimit)
        var keywordHits: [Int: [Range<Int>]] = [:]
        for hit in rules.keywords.hits(in: WordTokenizer.tokens(in: text, limit: scanLength)) {
            keywordHits[hit.keyword, default: []].append(hit.start..<hit.end)
        }
        var facts = Facts(text: text, scanLength: scanLength, characters: text.unicodeScalars.count, messages: messages,
                          keywordHits: keywordHits,
                          folded: condition.hasPrefilteredRegex ? FoldedText(text, limit: scanLength) : nil)
        var ignored: [Range<Int>] = []
        return evaluate(condition, &facts, &ignored)
    }

    private func evaluate(_ condition: Condition, _ facts: inout Facts, _ spans: inout [Range<Int>]) -> Bool {
        switch condition {
        case .anyKeywords(let ids):
            var found = false
            for id in ids {
                if let hits = facts.keywordHits[id] {
                    spans.append(contentsOf: hits)
                    found = true
                }
            }
            return found
        case .allKeywords(let ids):
            for id in ids where facts.keywordHits[id] == nil { return false }
            for id in ids { spans.append(contentsOf: facts.keywordHits[id]!) }
            return true
        case .regex(let regex):
            if let requirement = regex.requirement, let folded = facts.folded,
               !requirement.contains(where: folded.contains) {
                return false
            }
            if facts.regexDeadline == nil { facts.regexDeadline = ContinuousClock.now + Self.regexBudget }
            let ranges = regex.matches(in: facts.text, length: facts.scanLength, deadline: facts.regexDeadline!)
            spans.append(contentsOf: ranges)
            return !ranges.isEmpty
        case .minChars(let limit): return facts.characters >= limit
        case .maxChars(let limit): return facts.characters <= limit
        case .minMessages(let limit): return facts.messages >= limit
        case .maxMessages(let limit): return facts.messages <= limit
        case .all(let parts):
            let mark = spans.count
            for part in parts where !evaluate(part, &facts, &spans) {
                spans.removeSubrange(mark...)
                return false
            }
            return true
        case .any(let parts):
            var found = false
            for part in parts where evaluate(part, &facts, &spans) { found = true }
            return found
        case .not(let part):
            var ignored: [Range<Int>] = []
            return !evaluate(part, &facts, &ignored)
        }
    }

    private func textMatches(_ spans: [Range<Int>], in text: String, segments: [Segment]) -> [TextMatch] {
        guard !spans.isEmpty else { return [] }
        var unique = Array(Set(spans))
        unique.sort { $0.lowerBound != $1.lowerBound ? $0.lowerBound < $1.lowerBound : $0.upperBound < $1.upperBound }
        let utf16 = text.utf16
        return unique.map { span in
            let segment = segments.last { $0.start <= span.lowerBound } ?? segments[0]
            let from = utf16.index(utf16.startIndex, offsetBy: span.lowerBound)
            let to = utf16.index(from, offsetBy: span.count)
            return TextMatch(text: String(text[from..<to]), start: span.lowerBound - segment.start,
                             end: span.upperBound - segment.start, messageIndex: segment.messageIndex)
        }
    }
}
