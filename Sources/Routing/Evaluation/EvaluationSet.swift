import ChatCore
import Yams

/// A labelled chat: what the analyzer should conclude about it.
public struct EvaluationCase: Sendable {
    public let input: AnalysisInput
    /// The query, or the last user message of a chat: how the case is shown.
    public let text: String
    public let expectedLevel: String
    /// The route it must take, when the label says.
    public let expectedRoute: String?
    /// `tune` (the default) or `holdout`: which part of the set the case belongs to.
    public let split: String
    public let tags: [String]
    public let location: SourceLocation
}

/// A routing evaluation set (`routing-eval.yaml`): labelled cases, read with `file:line:col` diagnostics.
public struct EvaluationSet: Sendable {
    public static let splits = ["tune", "holdout"]

    public let path: String
    public let cases: [EvaluationCase]

    /// The cases of one split; `nil` for all of them.
    public func cases(in split: String?) -> [EvaluationCase] {
        guard let split else { return cases }
        return cases.filter { $0.split == split }
    }

    /// Parses `yaml`; every label must name a level and route of `rules`. `nil` when anything is an error.
    public static func load(yaml: String, path: String, rules: RuleSet) -> (set: EvaluationSet?, diagnostics: [Diagnostic]) {
        var parser = EvaluationSetParser(path: path, levels: rules.levels.map(\.name), routes: rules.routes.keys.sorted())
        let cases = parser.parse(yaml)
        let set = parser.diagnostics.hasErrors ? nil : EvaluationSet(path: path, cases: cases ?? [])
        return (set, parser.diagnostics)
    }
}

/// Reads an evaluation set: `version: 1` and `cases:`, each a `query` or `messages` with its `level`.
struct EvaluationSetParser: YAMLDiagnosing {
    let path: String
    let levels: [String]
    let routes: [String]
    var diagnostics: [Diagnostic] = []

    init(path: String, levels: [String], routes: [String]) {
        self.path = path
        self.levels = levels
        self.routes = routes
    }

    static let caseKeys = ["query", "messages", "level", "route", "split", "tags"]
    static let messageKeys = ["role", "content"]

    mutating func parse(_ yaml: String) -> [EvaluationCase]? {
        guard let (root, items) = versionOneList(yaml, listKey: "cases", what: "list the labelled queries") else { return nil }
        if items.isEmpty { error("\"cases\" is empty", at: root) }
        return items.enumerated().compactMap { parseCase($1, context: "case \($0 + 1)") }
    }

    private mutating func parseCase(_ item: Node, context: String) -> EvaluationCase? {
        guard let fields = mapping(item, context) else { return nil }
        checkKeys(fields, allowed: Self.caseKeys, context: context)
        var messages: [AnalysisInput.Message] = []
        switch (fields["query"], fields["messages"]) {
        case (let query?, nil):
            guard let text = string(query, "\(context): query") else { return nil }
            messages = [.init(isUser: true, text: text)]
        case (nil, let list?):
            guard let entries = sequence(list, "\(context): messages") else { return nil }
            for entry in entries {
                guard let message = mapping(entry, "\(context): message") else { return nil }
                checkKeys(message, allowed: Self.messageKeys, context: "\(context): message")
                guard let roleNode = message["role"], let role = string(roleNode, "\(context): role"),
                      let contentNode = message["content"], let content = string(contentNode, "\(context): content") else {
                    if message["role"] == nil || message["content"] == nil {
                        error("\(context): a message needs \"role\" and \"content\"", at: entry)
                    }
                    return nil
                }
                guard role == "user" || role == "assistant" else {
                    error("\(context): unknown role \"\(role)\"; expected user or assistant", at: roleNode)
                    return nil
                }
                messages.append(.init(isUser: role == "user", text: content))
            }
        case (.some, .some):
            error("\(context): give \"query\" or \"messages\", not both", at: item)
            return nil
        case (nil, nil):
            error("\(context): missing \"query\" (or \"messages\" for a chat)", at: item)
            return nil
        }
        guard let shown = messages.last(where: { $0.isUser && !$0.text.isEmpty })?.text else {
            error("\(context): no user message has text to analyse", at: item)
            return nil
        }
        guard let levelNode = fields["level"] else {
            error("\(context): missing \"level\" (the expected complexity)", at: item)
            return nil
        }
        guard let level = string(levelNode, "\(context): level") else { return nil }
        guard levels.contains(level) else {
            error("\(context): unknown level \"\(level)\"" + Suggestion.didYouMean(level, in: levels), at: levelNode)
            return nil
        }
        var route: String?
        if let routeNode = fields["route"], let name = string(routeNode, "\(context): route") {
            guard routes.contains(name) else {
                error("\(context): unknown route \"\(name)\"" + Suggestion.didYouMean(name, in: routes), at: routeNode)
                return nil
            }
            route = name
        }
        var split = "tune"
        if let splitNode = fields["split"], let name = string(splitNode, "\(context): split") {
            guard EvaluationSet.splits.contains(name) else {
                error("\(context): unknown split \"\(name)\"; expected tune or holdout"
                      + Suggestion.didYouMean(name, in: EvaluationSet.splits), at: splitNode)
                return nil
            }
            split = name
        }
        var tags: [String] = []
        if let tagsNode = fields["tags"], let list = sequence(tagsNode, "\(context): tags") {
            tags = list.compactMap { string($0, "\(context): tags") }
        }
        return EvaluationCase(input: AnalysisInput(messages: messages), text: shown, expectedLevel: level, expectedRoute: route,
                              split: split, tags: tags, location: location(item))
    }
}
