import ArgumentParser
import ChatCore
import ChatPipeline
import Foundation
import Routing

struct Analyze: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Analyse a query with the rules and explain the routing decision.",
        discussion: "The words of QUERY are joined with spaces and analysed as one user message."
    )

    @OptionGroup var rules: RulesOption

    @Flag(help: "Print the same JSON as POST /mcp/chat/analyze.")
    var json = false

    @Argument(help: "The query to analyse.")
    var query: [String]

    func validate() throws {
        if query.joined().trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw ValidationError("Give a query to analyse, for example: switchboard analyze \"chart salaries by department\"")
        }
    }

    func run() async throws {
        let ruleSet = try rules.load()
        let text = query.joined(separator: " ")
        let analyzer = QueryAnalyzer(rules: ruleSet)
        let clock = ContinuousClock()
        let started = clock.now
        guard let analysis = analyzer.analyze(AnalysisInput(query: text)) else { throw ExitCode(1) }
        let micros = Int(((clock.now - started) / .microseconds(1)).rounded(.up))
        if json {
            let report = AnalysisReport(analysis, rulesVersion: ruleSet.fingerprint, micros: micros, defaultModel: AgentConfiguration().model)
            let data = try JSONEncoder.sortedKeys.encode(report)
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print(explain(analysis, text: text, rules: ruleSet))
    }

    private func explain(_ analysis: Analysis, text: String, rules: RuleSet) -> String {
        var lines: [String] = []
        let route = analysis.route
        lines.append("complexity: \(analysis.level.name) (score \(analysis.score.compactText))")
        switch route.action {
        case .stream:
            let model = route.model ?? AgentConfiguration().model
            lines.append("route:      \(route.name) → stream with \(model)"
                         + (route.maxIterations.map { ", up to \($0) iterations" } ?? ""))
        case .advise:
            lines.append("route:      \(route.name) → advise: \(route.message ?? "")")
        }
        if let forcedBy = analysis.routeForcedBy {
            lines.append("            (forced by rule \(forcedBy); the level's route is \(analysis.level.route))")
        }
        lines.append("estimate:   \(analysis.level.estimatedSeconds.compactText) s")
        if analysis.matchedRules.isEmpty {
            lines.append("matched:    no rules")
        } else {
            lines.append("matched:")
            for rule in analysis.matchedRules {
                var line = "  \(rule.id) +\(rule.weight.compactText)"
                if let route = rule.route { line += " → \(route)" }
                if !rule.matches.isEmpty {
                    line += "  on " + rule.matches.map { "\"\($0.text)\" [\($0.start)..<\($0.end)]" }.joined(separator: ", ")
                }
                if let description = rule.description { line += "  — \(description)" }
                lines.append(line)
            }
        }
        let thresholds = rules.levels.map { level in
            level.maxScore.map { "\(level.name) ≤ \($0.compactText)" } ?? "\(level.name) above"
        }
        lines.append("levels:     " + thresholds.joined(separator: ", "))
        lines.append("rules:      \(rules.path) \(rules.fingerprint.prefix(19))…")
        return lines.joined(separator: "\n")
    }
}
