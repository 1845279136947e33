import Routing
import TestSupport

/// A rules file with two levels and two routes around the given `rules:` section.
func rulesYAML(history: Int = 0, rules: String) -> String {
    rulesFile(analyze: "{ history: \(history) }", levels: """
      - { name: low, max_score: 2, route: quick, estimated_seconds: 2 }
      - { name: high, route: deep, estimated_seconds: 20 }
    """, routes: """
      quick: { action: stream, model: small, max_iterations: 2 }
      deep: { action: advise, message: "Use the desktop client." }
    """, rules: rules)
}

func load(_ yaml: String, path: String = "rules.yaml") -> RuleSetLoader.Outcome {
    RuleSetLoader.load(yaml: yaml, path: path, fingerprint: "test")
}

/// Compiles a single rule `r` with the given condition (YAML flow mapping) and weight 1.
func analyzer(condition: String, history: Int = 0) throws -> QueryAnalyzer {
    let outcome = load(rulesYAML(history: history, rules: "  - { id: r, weight: 1, when: \(condition) }"))
    guard let rules = outcome.accepted else {
        throw RulesRejected(diagnostics: outcome.diagnostics.map(\.description))
    }
    return QueryAnalyzer(rules: rules)
}

struct RulesRejected: Error, CustomStringConvertible {
    let diagnostics: [String]
    var description: String { diagnostics.joined(separator: "\n") }
}

extension QueryAnalyzer {
    func matches(_ query: String) -> Bool {
        analyze(AnalysisInput(query: query))?.matchedRules.isEmpty == false
    }
}
