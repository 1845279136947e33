import Testing
@testable import Routing

@Suite("Keywords and phrases")
struct KeywordMatchingTests {
    @Test("match whole words, case-insensitively, Unicode-aware", arguments: [
        ("[api]", "What is the capital of France?", false),
        ("[api]", "Which API returns employees?", true),
        ("[visualise]", "Visualisierung der Gehälter", false),
        ("[visualise]", "please VISUALISE this", true),
        ("[São Paulo]", "Headcount in são paulo", true),
        ("[São Paulo]", "Headcount in Sao Paulo", false),
        ("[São Paulo]", "Headcount in Sa\u{0303}o Paulo", true),     // decomposed ã
        ("[São Paulo]", "Headcount in São\nPaulo", true),
        ("[São Paulo]", "Headcount in São", false),
        ("[over time]", "salaries over  time", true),
        ("[over time]", "overtime pay", false),
        ("[chart]", "charts", false),
        ("[chart]", "a bar-chart please", true),
        ("[straße]", "STRASSE", false),
        ("[Gehalt]", "GEHALT pro Abteilung", true),
        ("[东京]", "员工在东京", false),
        ("[东京]", "员工 东京 办公室", true),
        ("[5-10]", "employees with 5-10% increment", true),
        ("[5-10]", "employees with 5-100% increment", false),
    ])
    func wordBoundaries(keywords: String, query: String, matches: Bool) throws {
        let analyzer = try analyzer(condition: "{ any_keywords: \(keywords) }")
        #expect(analyzer.matches(query) == matches)
    }

    @Test("all_keywords needs every keyword; any_keywords one", arguments: [
        ("all_keywords", "salary chart", true),
        ("all_keywords", "salary table", false),
        ("any_keywords", "salary table", true),
        ("any_keywords", "head count", false),
    ])
    func allAndAny(condition: String, query: String, matches: Bool) throws {
        let analyzer = try analyzer(condition: "{ \(condition): [salary, chart] }")
        #expect(analyzer.matches(query) == matches)
    }

    @Test("spans are UTF-16 offsets into the message, with the matched text")
    func spans() throws {
        let analyzer = try analyzer(condition: "{ any_keywords: [chart, São Paulo] }")
        let text = "😀 Chart for São Paulo, then another chart"
        let analysis = try #require(analyzer.analyze(AnalysisInput(query: text)))
        let matches = try #require(analysis.matchedRules.first).matches
        #expect(matches.map(\.text) == ["Chart", "São Paulo", "chart"])
        #expect(matches.map(\.start) == [3, 13, 37])
        let utf16 = Array(text.utf16)
        for match in matches {
            #expect(String(decoding: utf16[match.start..<match.end], as: UTF16.self) == match.text)
        }
    }

    @Test("a long text is matched only up to the scan limit")
    func scanLimit() throws {
        let yaml = rulesYAML(rules: "  - { id: r, weight: 1, when: { any_keywords: [chart] } }")
            .replacingOccurrences(of: "analyze: { history: 0 }", with: "analyze: { history: 0, scan_limit: 20 }")
        let rules = try #require(load(yaml).accepted)
        let analyzer = QueryAnalyzer(rules: rules)
        #expect(analyzer.matches("a chart"))
        #expect(!analyzer.matches(String(repeating: "x ", count: 20) + "chart"))
    }
}
