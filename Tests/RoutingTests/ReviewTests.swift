import ChatCore
import ConfigFiles
import Foundation
import Routing
import Testing
import TestSupport

/// Three levels: simple (3 s), moderate, complex.
private let reviewRules: RuleSet = {
    let yaml = rulesFile(levels: """
      - { name: simple, max_score: 1, route: fast, estimated_seconds: 3 }
      - { name: moderate, max_score: 4, route: fast, estimated_seconds: 10 }
      - { name: complex, route: fast, estimated_seconds: 30 }
    """, routes: "  fast: { action: stream, model: claude-haiku-4-5, max_iterations: 3 }",
        rules: "  - { id: charts, weight: 5, when: { any_keywords: [chart] } }")
    return RuleSetLoader.load(yaml: yaml, path: "rules.yaml", fingerprint: "t").accepted!
}()

private func chat(_ id: String, level: String = "simple", durationMs: Int = 2_000, iterations: Int = 2, toolCalls: Int = 1,
                  outcome: String = "complete", stopReason: String? = "end_turn", text: String? = "list the people",
                  feedback: StreamFeedback? = nil) -> ReviewedStream {
    ReviewedStream(sessionId: id, finishedAt: 1_000, level: level, route: "fast", analysedLevel: level, score: 0, matchedRules: [],
                   durationMs: durationMs, iterations: iterations, toolCalls: toolCalls, outputTokens: 100, costUSD: 0.001,
                   outcome: outcome, stopReason: stopReason, queryText: text, feedback: feedback)
}

@Suite("Misroutes found in the traffic")
struct ReviewTests {
    @Test("each signal flags the chat that produced it, with the level it suggests; ordinary chats are not flagged")
    func signals() {
        // Ten ordinary simple chats give the level its usual: 1 tool call, 2 s.
        var streams = (0..<10).map { chat("ordinary-\($0)") }
        streams.append(chat("limit", stopReason: "max_iterations"))
        streams.append(chat("slow", durationMs: 9_000))
        streams.append(chat("tools", toolCalls: 5))
        streams.append(chat("short", level: "moderate", durationMs: 1_500, iterations: 1, toolCalls: 0))
        streams.append(chat("told", level: "moderate", feedback: StreamFeedback(rating: .down, expectedLevel: "complex", comment: nil)))
        streams.append(chat("liked", level: "moderate", feedback: StreamFeedback(rating: .up, expectedLevel: "complex", comment: nil)))
        streams.append(chat("failed", outcome: "error", stopReason: nil))
        streams.append(chat("top", level: "complex", stopReason: "max_iterations"))
        let flagged = Dictionary(uniqueKeysWithValues: Review.flag(streams, rules: reviewRules).map { ($0.stream.sessionId, $0) })
        #expect(Set(flagged.keys) == ["limit", "slow", "tools", "short", "told"], "\(flagged.keys.sorted())")
        #expect(flagged["limit"]?.signals == [.maxIterations] && flagged["limit"]?.suggestedLevel == "moderate")
        #expect(flagged["slow"]?.signals == [.outlier] && flagged["tools"]?.signals == [.outlier])
        #expect(flagged["short"]?.signals == [.oneShortCall] && flagged["short"]?.suggestedLevel == "simple")
        #expect(flagged["told"]?.signals == [.feedback] && flagged["told"]?.suggestedLevel == "complex")
        #expect(flagged["told"]?.guessed == false && flagged["limit"]?.guessed == true)
    }

    @Test("without enough chats on a level there is no usual to be far from")
    func outlierNeedsSamples() {
        let streams = (0..<5).map { chat("c\($0)") } + [chat("slow", durationMs: 60_000)]
        #expect(Review.flag(streams, rules: reviewRules).isEmpty)
    }

    @Test("the export is an evaluation set rules eval reads: the suggested level, the signals as tags, needs-review for guesses")
    func export() throws {
        let streams = [chat("limit", stopReason: "max_iterations", text: "compare \"Q1\"\nand Q2"),
                       chat("told", level: "moderate", text: "draw a chart",
                            feedback: StreamFeedback(rating: .down, expectedLevel: "complex", comment: nil)),
                       chat("untold", stopReason: "max_iterations", text: nil)]
        let cases = Review.evaluationCases(Review.flag(streams, rules: reviewRules))
        #expect(cases.written == 2 && cases.skipped == 1)
        let loaded = EvaluationSet.load(yaml: cases.yaml, path: "review.yaml", rules: reviewRules)
        #expect(loaded.diagnostics.isEmpty, "\(loaded.diagnostics) \(cases.yaml)")
        let set = try #require(loaded.set)
        #expect(set.cases.map(\.expectedLevel) == ["moderate", "complex"])
        #expect(set.cases.first?.tags == ["max_iterations", "needs-review"])
        #expect(set.cases.last?.tags == ["feedback"])
        #expect(set.cases.first?.text == "compare \"Q1\"\nand Q2")
    }

    @Test("review windows as people write them", arguments: [("90s", 90_000), ("30m", 1_800_000), ("24h", 86_400_000),
                                                            ("7d", 604_800_000), ("120", 120_000)] as [(String, Int64)])
    func windows(text: String, milliseconds: Int64) {
        #expect(Review.windowMilliseconds(text) == milliseconds)
    }

    @Test("not a window", arguments: ["", "h", "-5m", "0s", "1y", "5 minutes"])
    func notWindows(text: String) {
        #expect(Review.windowMilliseconds(text) == nil)
    }

    @Test("a level's limits in the review: section judge its chats, without waiting for enough of them")
    func sectionLimits() throws {
        let yaml = rulesFile(levels: """
          - { name: simple, max_score: 1, route: fast, estimated_seconds: 3 }
          - { name: complex, route: fast, estimated_seconds: 30 }
        """, routes: "  fast: { action: stream, model: claude-haiku-4-5 }") + """

            review:
              outlier_factor: 3
              levels:
                simple: { max_tool_calls: 2, max_seconds: 5 }
            """
        let outcome = RuleSetLoader.load(yaml: yaml, path: "rules.yaml", fingerprint: "t")
        let rules = try #require(outcome.accepted, "\(outcome.diagnostics)")
        #expect(rules.review.outlierFactor == 3 && rules.review.limits["simple"] == .init(maxToolCalls: 2, maxSeconds: 5))
        let flagged = Review.flag([chat("calm"), chat("busy", toolCalls: 3), chat("long", durationMs: 6_000)], rules: rules)
        #expect(flagged.map(\.stream.sessionId) == ["busy", "long"] && flagged.allSatisfy { $0.signals == [.outlier] })
    }

    @Test("a bad review: section is a file:line:col error", arguments: [
        ("review:\n  levels:\n    simpel: { max_tool_calls: 2 }\n", "rules.yaml:10:5: error: review level \"simpel\": no level is named \"simpel\" (did you mean \"simple\"?)"),
        ("review:\n  outlier_factor: 0.5\n", "rules.yaml:9:19: error: review.outlier_factor: must be at least 1, found 0.5"),
        ("review:\n  levels:\n    simple: { max_calls: 2 }\n", "rules.yaml:10:15: error: review level \"simple\": unknown key \"max_calls\""),
    ])
    func sectionDiagnostics(section: String, expected: String) {
        let yaml = rulesFile(levels: twoLevels(), routes: twoRoutes()) + "\n" + section
        let outcome = RuleSetLoader.load(yaml: yaml, path: "rules.yaml", fingerprint: "t")
        #expect(outcome.accepted == nil)
        #expect(outcome.diagnostics.contains { $0.description.hasPrefix(expected) }, "\(outcome.diagnostics.map(\.description)) \(yaml)")
    }
}
