import Foundation
import Testing
@testable import Routing

@Suite("Analyzer")
struct AnalyzerTests {
    static let scoring = rulesYAML(rules: """
          - { id: one, weight: 1, when: { any_keywords: [alpha] } }
          - { id: two, weight: 2, when: { any_keywords: [beta] } }
          - { id: force, when: { any_keywords: [export] }, route: deep }
        """)

    @Test("score sums the weights; the first level whose max_score holds it wins", arguments: [
        ("nothing", 0.0, "low", "quick"),
        ("alpha", 1, "low", "quick"),
        ("alpha beta", 3, "high", "deep"),
        ("beta", 2, "low", "quick"),
        ("export alpha", 1, "low", "deep"),
    ])
    func scoring(query: String, score: Double, level: String, route: String) throws {
        let analyzer = QueryAnalyzer(rules: try #require(load(Self.scoring).accepted))
        let analysis = try #require(analyzer.analyze(AnalysisInput(query: query)))
        #expect(analysis.score == score)
        #expect(analysis.level.name == level)
        #expect(analysis.route.name == route)
        #expect(analysis.routeForcedBy == (query.contains("export") ? "force" : nil))
    }

    @Test("the last user turn is analysed, with `history` earlier user turns")
    func history() throws {
        let messages = [
            AnalysisInput.Message(isUser: true, text: "alpha please"),
            AnalysisInput.Message(isUser: false, text: "beta from the assistant"),
            AnalysisInput.Message(isUser: true, text: "and beta"),
            AnalysisInput.Message(isUser: false, text: "ok"),
        ]
        let lastOnly = QueryAnalyzer(rules: try #require(load(Self.scoring).accepted))
        #expect(lastOnly.analyze(AnalysisInput(messages: messages))?.matchedRules.map(\.id) == ["two"])

        let withHistory = QueryAnalyzer(rules: try #require(load(Self.scoring.replacingOccurrences(
            of: "history: 0", with: "history: 1")).accepted))
        let analysis = try #require(withHistory.analyze(AnalysisInput(messages: messages)))
        #expect(analysis.matchedRules.map(\.id) == ["one", "two"])
        let spans = analysis.matchedRules.flatMap(\.matches)
        #expect(spans == [
            TextMatch(text: "alpha", start: 0, end: 5, messageIndex: 0),
            TextMatch(text: "beta", start: 4, end: 8, messageIndex: 2),
        ])
    }

    @Test("no user text, no analysis")
    func noUserText() throws {
        let analyzer = QueryAnalyzer(rules: try #require(load(Self.scoring).accepted))
        #expect(analyzer.analyze(AnalysisInput(messages: [.init(isUser: false, text: "hi"), .init(isUser: true, text: "")])) == nil)
    }

    @Test("the shipped rules.yaml loads cleanly and its examples pass")
    func shippedRules() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../rules.yaml")
        let yaml = try String(contentsOf: url, encoding: .utf8)
        let outcome = load(yaml)
        #expect(outcome.diagnostics.isEmpty, "\(outcome.diagnostics)")
        #expect(outcome.exampleResults.count >= 5)
        #expect(outcome.exampleResults.allSatisfy { $0.passed })
        #expect(yaml.trimmingCharacters(in: .newlines) == DefaultRules.yaml.trimmingCharacters(in: .newlines),
                "Sources/Routing/DefaultRules.swift is stale: run scripts/embed-default-rules.sh")
    }

    @Test("the seed query is simple; a chart comparison is complex and advised to the desktop")
    func seedQueries() throws {
        let analyzer = QueryAnalyzer(rules: try #require(load(DefaultRules.yaml).accepted))
        let simple = try #require(analyzer.analyze(AnalysisInput(query: "give me list of employees with 5-10% increment")))
        #expect(simple.level.name == "simple")
        #expect(simple.route.action == .stream)
        let complex = try #require(analyzer.analyze(AnalysisInput(query: "chart salary trends by department and compare with last year")))
        #expect(complex.level.name == "complex")
        #expect(complex.route.action == .advise)
        #expect(complex.matchedRules.first?.matches.first == TextMatch(text: "chart", start: 0, end: 5, messageIndex: 0))
    }
}
