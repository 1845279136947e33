import ConfigFiles
import Foundation
import Testing
@testable import Routing

/// Rules with three levels, where `chart` is complex only at weight 6, `average` moderate at 3.
private let threeLevels = """
    version: 1
    levels:
      - { name: simple,   max_score: 2, route: fast,    estimated_seconds: 2 }
      - { name: moderate, max_score: 5, route: normal,  estimated_seconds: 5 }
      - { name: complex,                route: desktop, estimated_seconds: 20 }
    routes:
      fast:    { action: stream, model: small }
      normal:  { action: stream, model: big }
      desktop: { action: advise, message: "Use the desktop client." }
    rules:
      - id: charts
        when: { any_keywords: [chart, plot] }
        weight: 4
      - id: stats
        when: { any_keywords: [average, median] }
        weight: 3
    examples:
      - query: "average salary"
        expect: { level: moderate }
    """

private func ruleSet(_ yaml: String = threeLevels) throws -> RuleSet {
    let outcome = load(yaml)
    return try #require(outcome.accepted, "\(outcome.diagnostics)")
}

private func evaluationSet(_ yaml: String, rules: RuleSet) -> (EvaluationSet?, [String]) {
    let (set, diagnostics) = EvaluationSet.load(yaml: yaml, path: "eval.yaml", rules: rules)
    return (set, diagnostics.map(\.description))
}

@Suite("Routing evaluation")
struct EvaluationTests {
    private let cases = """
        version: 1
        cases:
          - { query: "list employees in Berlin", level: simple }
          - { query: "average salary in Berlin", level: moderate }
          - { query: "make a chart of salaries", level: complex, route: desktop, tags: [chart] }
          - { query: "plot the headcount", level: complex, split: holdout, tags: [chart] }
          - { query: "chart of accounts owner", level: simple, tags: [trap] }
          - messages:
              - { role: user, content: "average salary in sales" }
              - { role: assistant, content: "68,400" }
              - { role: user, content: "median too" }
            level: moderate
        """

    @Test("accuracy, the confusion matrix, recall, rule hits by expected level, tags and every miss with its reasons")
    func report() throws {
        let rules = try ruleSet()
        let (set, diagnostics) = evaluationSet(cases, rules: rules)
        #expect(diagnostics.isEmpty)
        let report = RoutingEvaluation.run(rules, on: try #require(set).cases, split: "all")
        #expect(report.cases == 6)
        // The two chart cases score 4 (moderate, not complex) and the trap matches `chart`: three misses.
        #expect(report.correct == 3)
        #expect(report.levels == ["simple", "moderate", "complex"])
        #expect(report.confusion == [[1, 1, 0], [0, 2, 0], [0, 2, 0]])
        #expect(report.recall == ["simple": 0.5, "moderate": 1, "complex": 0])
        #expect(report.topLevelRecall == 0)
        #expect(report.rules.map(\.id) == ["charts", "stats"])
        #expect(report.rules[0].byExpectedLevel == ["complex": 2, "simple": 1])
        #expect(report.rules[1].byExpectedLevel == ["moderate": 2])
        #expect(report.tags.map { "\($0.tag) \($0.correct)/\($0.cases)" } == ["chart 0/2", "trap 0/1"])
        let miss = try #require(report.misses.first)
        #expect((miss.line, miss.text, miss.expectedLevel, miss.expectedRoute) == (5, "make a chart of salaries", "complex", "desktop"))
        #expect((miss.level, miss.route, miss.score, miss.rules) == ("moderate", "normal", 4, ["charts"]))
        #expect(report.misses.map(\.line) == [5, 6, 7])
    }

    @Test("splits: the holdout is evaluated apart from the tune cases")
    func splits() throws {
        let rules = try ruleSet()
        let set = try #require(evaluationSet(cases, rules: rules).0)
        #expect(set.cases(in: "holdout").map(\.text) == ["plot the headcount"])
        #expect(set.cases(in: "tune").count == 5)
        #expect(set.cases(in: nil).count == 6)
        // A chat is shown by its last user message, and analysed as a chat.
        #expect(set.cases.last?.text == "median too")
        #expect(set.cases.last?.input.messages.count == 3)
    }

    @Test("a broken set gets every problem with file:line:col, as the rules file does")
    func diagnostics() throws {
        let rules = try ruleSet()
        let (set, diagnostics) = evaluationSet("""
            version: 1
            cases:
              - { query: "a", level: complx }
              - { query: "b", messages: [], level: simple }
              - { level: simple }
              - { query: "c", level: simple, split: holdot }
              - { query: "d", level: simple, route: dektop }
              - { query: "e", levle: simple }
              - messages: [{ role: system, content: "x" }]
                level: simple
            """, rules: rules)
        #expect(set == nil)
        #expect(diagnostics == [
            #"eval.yaml:3:26: error: case 1: unknown level "complx" (did you mean "complex"?)"#,
            #"eval.yaml:4:5: error: case 2: give "query" or "messages", not both"#,
            #"eval.yaml:5:5: error: case 3: missing "query" (or "messages" for a chat)"#,
            #"eval.yaml:6:41: error: case 4: unknown split "holdot"; expected tune or holdout (did you mean "holdout"?)"#,
            #"eval.yaml:7:41: error: case 5: unknown route "dektop" (did you mean "desktop"?)"#,
            #"eval.yaml:8:19: error: case 6: unknown key "levle" (did you mean "level"?)"#,
            #"eval.yaml:8:5: error: case 6: missing "level" (the expected complexity)"#,
            #"eval.yaml:9:24: error: case 7: unknown role "system"; expected user or assistant"#,
        ])
    }
}

@Suite("Rule tuner")
struct RuleTunerTests {
    private let cases = """
        version: 1
        cases:
          - { query: "list employees in Berlin", level: simple }
          - { query: "make a chart of salaries", level: complex }
          - { query: "plot the headcount", level: complex }
          - { query: "average salary", level: moderate }
          - { query: "median salary", level: moderate }
        """

    @Test("finds weights that fit better, and prints the lines to change")
    func suggests() throws {
        let rules = try ruleSet()
        let set = try #require(evaluationSet(cases, rules: rules).0)
        let result = RuleTuner.suggest(rules, cases: set.cases)
        #expect(result.correctBefore == 3)
        #expect(result.correctAfter == 5)
        #expect(result.changes.map(\.target) == [.weight(rule: "charts")])
        let change = try #require(result.changes.first)
        #expect(change.old == 4 && change.new > 5)
        // The tuned rules give what the search promised.
        #expect(RoutingEvaluation.run(result.tuned, on: set.cases, split: "all").correct == 5)
        #expect(result.editedLines(of: threeLevels, path: "rules.yaml") == [
            "rules.yaml:13: rule \"charts\": weight 4 → \(change.new.compactText)\n        weight: \(change.new.compactText)",
        ])
    }

    @Test("never breaks an example of the rules file, even when breaking it would fit the cases better")
    func keepsExamples() throws {
        // The set wants "average salary" simple; the file's example wants it moderate.
        let rules = try ruleSet()
        let set = try #require(evaluationSet("""
            version: 1
            cases:
              - { query: "average salary", level: simple }
              - { query: "median pay", level: simple }
            """, rules: rules).0)
        let result = RuleTuner.suggest(rules, cases: set.cases)
        #expect(result.correctAfter == 0)
        #expect(result.changes.isEmpty)
        let examples = ExampleRunner.run(result.tuned)
        #expect(examples.filter { !$0.passed }.isEmpty)
    }

    @Test("thresholds move too, and stay in increasing order")
    func thresholds() throws {
        let rules = try ruleSet()
        let set = try #require(evaluationSet("""
            version: 1
            cases:
              - { query: "average salary", level: moderate }
              - { query: "chart", level: complex }
              - { query: "plot", level: complex }
            """, rules: rules).0)
        let result = RuleTuner.suggest(rules, cases: set.cases)
        #expect(result.correctAfter == 3)
        let levels = result.tuned.levels.compactMap(\.maxScore)
        #expect(levels == levels.sorted() && Set(levels).count == levels.count)
    }

    @Test("a value is replaced where it is written, whatever the layout")
    func replacesInLine() {
        #expect(RuleTuner.Result.replacingNumber(in: "  - { name: simple, max_score: 2, route: fast }", at: 32, with: 2.5)
                == "  - { name: simple, max_score: 2.5, route: fast }")
        #expect(RuleTuner.Result.replacingNumber(in: "    weight: 10", at: 13, with: 7) == "    weight: 7")
    }
}

@Suite("Follow-ups")
struct FollowUpTests {
    private func rules(history: Int = 0) throws -> QueryAnalyzer {
        let yaml = """
            version: 1
            analyze:
              history: \(history)
              follow_up: { all: [ { max_chars: 40 }, { any_keywords: [and for, same for, what about] } ] }
            levels:
              - { name: low, max_score: 2, route: quick }
              - { name: high, route: deep }
            routes:
              quick: { action: stream }
              deep: { action: advise, message: "desktop" }
            rules:
              - { id: charts, weight: 3, when: { any_keywords: [chart] } }
            """
        return QueryAnalyzer(rules: try #require(load(yaml).accepted, "\(load(yaml).diagnostics)"))
    }

    private func chat(_ turns: String...) -> AnalysisInput {
        AnalysisInput(messages: turns.enumerated().map { .init(isUser: $0.offset % 2 == 0, text: $0.element) })
    }

    @Test("a short follow-up is judged with the user turn it follows")
    func joins() throws {
        let analysis = try #require(try rules().analyze(chat("chart headcount by office", "here", "and for departments?")))
        #expect(analysis.level.name == "high")
        #expect(analysis.matchedRules.first?.matches.first?.messageIndex == 0)
        #expect(analysis.matchedRules.first?.matches.first?.text == "chart")
    }

    @Test("a turn that is not a follow-up, or too long to be one, stands alone", arguments: [
        "thanks, who is the head of sales?",
        "and for departments, please list every employee with their manager and title",
    ])
    func standsAlone(_ last: String) throws {
        let analysis = try #require(try rules().analyze(chat("chart headcount by office", "here", last)))
        #expect(analysis.level.name == "low")
        #expect(analysis.matchedRules.isEmpty)
    }

    @Test("with history, a follow-up adds one more turn")
    func historyPlusOne() throws {
        let input = chat("chart headcount", "ok", "list Berlin staff", "ok", "same for Paris")
        #expect(try rules(history: 0).analyze(input)?.level.name == "low")
        #expect(try rules(history: 1).analyze(input)?.level.name == "high")
    }
}

@Suite("Shipped rules on the labelled set")
struct ShippedRulesEvaluationTests {
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")

    private func evaluate(split: String?) throws -> EvaluationReport {
        let rulesYAML = try String(contentsOf: Self.root.appendingPathComponent("rules.yaml"), encoding: .utf8)
        let rules = try #require(load(rulesYAML).accepted)
        let setYAML = try String(contentsOf: Self.root.appendingPathComponent("routing-eval.yaml"), encoding: .utf8)
        let (set, diagnostics) = EvaluationSet.load(yaml: setYAML, path: "routing-eval.yaml", rules: rules)
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        return RoutingEvaluation.run(rules, on: try #require(set).cases(in: split), split: split ?? "all")
    }

    @Test("the set is what the issue asks: 150+ cases, 25+ traps, chats, and a held-out part")
    func setShape() throws {
        let all = try evaluate(split: nil)
        #expect(all.cases >= 150)
        #expect((all.tags.first { $0.tag == "trap" }?.cases ?? 0) >= 25)
        #expect((all.tags.first { $0.tag == "multi-turn" }?.cases ?? 0) >= 10)
        #expect(try evaluate(split: "holdout").cases >= 40)
    }

    @Test("the rules alone, tuned on the original tune split: at least 95% there, 95% recall on complex, and no trap taken for a request")
    func tuned() throws {
        // The cases before the batch of 2026-12, which was written to defeat keywords and is the semantic stage's to learn.
        let setYAML = try String(contentsOf: Self.root.appendingPathComponent("routing-eval.yaml"), encoding: .utf8)
        let batchLine = try #require(setYAML.components(separatedBy: "\n").firstIndex { $0.contains("batch of 2026-12 (tune)") }) + 1
        let rules = try #require(load(try String(contentsOf: Self.root.appendingPathComponent("rules.yaml"), encoding: .utf8)).accepted)
        let set = try #require(EvaluationSet.load(yaml: setYAML, path: "routing-eval.yaml", rules: rules).set)
        let original = set.cases(in: "tune").filter { $0.location.line < batchLine }
        #expect(original.count > 150)
        let tune = RoutingEvaluation.run(rules, on: original, split: "tune")
        #expect(tune.accuracy >= 0.95, "\(tune.misses.map(\.text))")
        #expect((tune.topLevelRecall ?? 0) >= 0.95)
        let traps = try #require(tune.tags.first { $0.tag == "trap" })
        #expect(traps.correct == traps.cases)
    }
}

@Suite("The semantic stage on the labelled set", .enabled(if: (try? EmbeddingModel.load(directory: EmbeddingModel.directory()).get()) != nil,
       "needs the embedding model: python3 scripts/derive-embeddings.py"))
struct SemanticEvaluationTests {
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")

    @Test("generalises: 5-fold cross-validated on the tune split, the rules with the stage beat the rules alone by 5 points and reach 87%, 85% complex recall")
    func crossValidated() throws {
        let path = Self.root.appendingPathComponent("rules.yaml").standardizedFileURL.path
        let rules = try #require(RulesFile.load(.file(path)).accepted)
        let setYAML = try String(contentsOf: Self.root.appendingPathComponent("routing-eval.yaml"), encoding: .utf8)
        let set = try #require(EvaluationSet.load(yaml: setYAML, path: "routing-eval.yaml", rules: rules).set)
        let report = RoutingEvaluation.crossValidate(rules, on: set.cases(in: "tune"), folds: 5, split: "tune")
        let stages = Dictionary(uniqueKeysWithValues: report.stages.map { ($0.stage, $0) })
        let combined = try #require(stages["combined"]), alone = try #require(stages["rules"])
        #expect(combined.accuracy >= 0.87, "\(combined.accuracy)")
        #expect((combined.topLevelRecall ?? 0) >= 0.85, "\(String(describing: combined.topLevelRecall))")
        #expect(combined.accuracy >= alone.accuracy + 0.05, "\(combined.accuracy) against \(alone.accuracy)")
    }
}

@Suite("The analysis report's hand-written JSON")
struct AnalysisReportJSONTests {
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")

    @Test("says exactly what Foundation's JSONEncoder says, for every chat of the labelled set (spans, nulls, advice and stream routes, escapes)")
    func matchesEncoder() throws {
        // With the semantic stage when the model is here (its probabilities and nearest examples are in the report).
        let path = Self.root.appendingPathComponent("rules.yaml").standardizedFileURL.path
        let rules = try #require(RulesFile.load(.file(path)).accepted)
        let setYAML = try String(contentsOf: Self.root.appendingPathComponent("routing-eval.yaml"), encoding: .utf8)
        let set = try #require(EvaluationSet.load(yaml: setYAML, path: "routing-eval.yaml", rules: rules).set)
        let analyzer = QueryAnalyzer(rules: rules)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var compared = 0
        let extra = [AnalysisInput(messages: [.init(isUser: true, text: "quote \" slash / tab \t newline \n é 😀 chart salaries")])]
        for input in set.cases.map(\.input) + extra {
            guard let analysis = analyzer.analyze(input) else { continue }
            let report = AnalysisReport(analysis, rulesVersion: rules.fingerprint, micros: 7, defaultModel: "claude-sonnet-4-5")
            let reference = try JSONSerialization.jsonObject(with: encoder.encode(report)) as? NSDictionary
            let written = try JSONSerialization.jsonObject(with: Data(report.jsonBytes)) as? NSDictionary
            #expect(written == reference, "\(String(decoding: report.jsonBytes, as: UTF8.self))")
            compared += 1
        }
        #expect(compared > 150)
    }
}

