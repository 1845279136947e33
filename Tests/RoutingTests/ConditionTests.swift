import Testing
@testable import Routing

@Suite("Conditions")
struct ConditionTests {
    @Test("each condition", arguments: [
        ("{ regex: '\\b(compare|vs\\.?)\\b' }", "Compare Berlin VS. London", true),
        ("{ regex: '\\b(compare|vs\\.?)\\b' }", "comparable numbers", false),
        ("{ min_chars: 5 }", "abcde", true),
        ("{ min_chars: 6 }", "abcde", false),
        ("{ max_chars: 5 }", "abcde", true),
        ("{ max_chars: 4 }", "abcde", false),
        ("{ min_chars: 3 }", "😀é!", true),
        ("{ not: { any_keywords: [chart] } }", "a table", true),
        ("{ not: { any_keywords: [chart] } }", "a chart", false),
        ("{ all: [ { any_keywords: [export] }, { any_keywords: [pdf, excel] } ] }", "export to Excel", true),
        ("{ all: [ { any_keywords: [export] }, { any_keywords: [pdf, excel] } ] }", "export to csv", false),
        ("{ any: [ { any_keywords: [pdf] }, { min_chars: 100 } ] }", "a pdf", true),
        ("{ any: [ { any_keywords: [pdf] }, { min_chars: 100 } ] }", "a doc", false),
        ("{ any_keywords: [export], max_chars: 10 }", "export it", true),
        ("{ any_keywords: [export], max_chars: 10 }", "export it all today", false),
    ])
    func condition(condition: String, query: String, matches: Bool) throws {
        let analyzer = try analyzer(condition: condition)
        #expect(analyzer.matches(query) == matches)
    }

    @Test("message counts see the whole conversation", arguments: [
        ("{ min_messages: 3 }", 3, true),
        ("{ min_messages: 3 }", 2, false),
        ("{ max_messages: 2 }", 2, true),
        ("{ max_messages: 2 }", 3, false),
    ])
    func messageCount(condition: String, count: Int, matches: Bool) throws {
        let analyzer = try analyzer(condition: condition)
        let messages = (0..<count).map { AnalysisInput.Message(isUser: $0 % 2 == 0, text: "turn \($0)") }
        let analysis = try #require(analyzer.analyze(AnalysisInput(messages: messages)))
        #expect(!analysis.matchedRules.isEmpty == matches)
    }

    @Test("a failed branch of `any` or `all` leaves no spans behind")
    func spansOfFailedBranches() throws {
        let analyzer = try analyzer(condition: "{ any: [ { all: [ { any_keywords: [pdf] }, { any_keywords: [zzz] } ] }, { any_keywords: [excel] } ] }")
        let analysis = try #require(analyzer.analyze(AnalysisInput(query: "pdf or excel")))
        #expect(analysis.matchedRules.first?.matches.map(\.text) == ["excel"])
    }
}
