import Foundation
import ConfigFiles
import Testing
@testable import Routing

@Suite("Diagnostics")
struct DiagnosticsTests {
    private func diagnostics(_ yaml: String) -> [String] {
        load(yaml).diagnostics.map(\.description)
    }

    @Test("a misspelt condition names its place and suggests the right word")
    func unknownCondition() {
        let yaml = rulesYAML(rules: """
              - id: charts
                weight: 4
                when: { regx: 'chart' }
            """)
        #expect(diagnostics(yaml) == [
            #"rules.yaml:12:13: error: rule "charts": unknown condition "regx" (did you mean "regex"?)"#,
        ])
    }

    @Test("every problem is reported, in file order")
    func collectsAll() {
        let yaml = """
            version: 2
            levels:
              - { name: low, max_score: 2, route: quik }
              - { name: high, max_score: 1, route: deep }
            routes:
              quick: { action: stream, model: m }
              deep: { action: advice }
            rules:
              - { id: a, weight: two, when: { any_keywords: [x] } }
              - { id: a, weight: 1, when: { min_chars: -1 } }
              - { id: b, weight: 1, when: { regex: '(a+)+$' } }
              - { id: c, weight: 1, when: { regex: '(unclosed' } }
              - { id: d, weight: 1, when: { any_keywords: ['++'] } }
              - { id: e, weight: 1, wen: { any_keywords: [y] } }
            """
        #expect(diagnostics(yaml) == [
            #"rules.yaml:1:10: error: unsupported version 2; this Switchboard reads version 1"#,
            #"rules.yaml:3:39: error: level "low": unknown route "quik" (did you mean "quick"?)"#,
            #"rules.yaml:4:30: error: level "high": the last level takes every higher score, so it must not set max_score"#,
            #"rules.yaml:7:19: error: route "deep": unknown action "advice"; expected stream or advise (did you mean "advise"?)"#,
            #"rules.yaml:9:22: error: rule "a": weight: expected a number, found "two""#,
            #"rules.yaml:10:11: error: rule "a": the id is used by another rule"#,
            #"rules.yaml:10:44: error: rule "a": min_chars: must be at least 0, found -1"#,
            #"rules.yaml:11:40: error: rule "b": regex repeats a group that itself repeats without bound, which can backtrack catastrophically; rewrite it without the nested quantifier"#,
            #"rules.yaml:12:40: error: rule "c": regex does not compile: invalid pattern (unclosed"#,
            #"rules.yaml:13:48: error: rule "d": any_keywords: keyword "++" has no letters or digits to match; use regex for symbols"#,
            #"rules.yaml:14:11: error: rule "e": missing "when" (the condition that makes it match)"#,
            #"rules.yaml:14:25: error: rule "e": unknown key "wen" (did you mean "when"?)"#,
        ])
    }

    @Test("broken YAML is reported with its position")
    func brokenYAML() {
        let yaml = "version: 1\nlevels:\n  - { name: low\n routes: x\n"
        let result = diagnostics(yaml)
        #expect(result.count == 1)
        #expect(result.first?.hasPrefix("rules.yaml:4:") == true, "\(result)")
        #expect(result.first?.contains(": error: invalid YAML: ") == true)
    }

    @Test("missing sections and empty files")
    func missingSections() {
        #expect(diagnostics("") == ["rules.yaml: error: the file is empty; expected a mapping with version, levels, routes and rules"])
        #expect(diagnostics("version: 1\nrules: []\n") == [
            #"rules.yaml:1:1: error: missing "routes": define at least one route"#,
            #"rules.yaml:1:1: error: missing "levels": define at least one level"#,
        ])
    }

    @Test("a failing example rejects the file and says what it got")
    func failingExample() {
        let yaml = rulesYAML(rules: "  - { id: beta, weight: 1, when: { any_keywords: [beta] } }") + """

            examples:
              - query: "beta"
                expect: { level: high, route: deep }
              - query: "gamma"
                expect: { level: low, rules: [] }
            """
        let outcome = load(yaml)
        #expect(outcome.accepted == nil)
        #expect(outcome.compiled != nil)
        #expect(outcome.diagnostics.map(\.description) == [
            #"rules.yaml:12:5: error: example "beta" failed: expected level high, got low; expected route deep, got quick (score 1 from beta 1)"#,
        ])
        #expect(outcome.exampleResults.map(\.passed) == [false, true])
    }

    @Test("warnings do not reject a file")
    func warnings() {
        let yaml = rulesYAML(rules: """
              - { id: noop, when: { any_keywords: [x] } }
              - { id: vs, weight: 1, when: { any_keywords: ['vs.'] } }
            """)
        let outcome = load(yaml)
        #expect(outcome.accepted != nil)
        #expect(outcome.diagnostics.map(\.description) == [
            #"rules.yaml:10:11: warning: rule "noop": has neither a weight nor a route, so matching it changes nothing"#,
            #"rules.yaml:11:49: warning: rule "vs": any_keywords: keyword "vs." matches as "vs": symbols are not matched; use regex to match them"#,
        ])
    }
}

@Suite("Regex safety")
struct RegexSafetyTests {
    @Test("nested unbounded quantifiers and repeated alternations are refused", arguments: [
        ("(a+)+", CompiledRegex.Problem.nestedQuantifier), ("(\\w+\\s*)*", .nestedQuantifier), ("((ab)*c)+", .nestedQuantifier),
        ("(x{2,})+", .nestedQuantifier), ("(a|aa)+", .quantifiedAlternation), ("(a|b)+", .quantifiedAlternation),
        ("(?:foo|foobar){2,}", .quantifiedAlternation),
        ("(ab)+c*", nil), ("\\b(compare|vs\\.?)\\b", nil), ("[(a+)]+", nil), ("(a+)?", nil), ("\\(a+\\)+", nil),
        ("(a|b){1,3}", nil), ("[a|b]+", nil), ("a|b+", nil),
        ("(?:a?){23}a{23}", .repeatedVariableGroup(23)), ("^(.*a){12}$", .repeatedVariableGroup(12)), ("(a|aa){8}", .repeatedVariableGroup(8)),
        ("((a?){3}){5}", .repeatedVariableGroup(5)), ("(\\w+ ){3}", .repeatedVariableGroup(3)),
        ("(\\w+ ){2}", nil), ("(ab){10}", nil), ("(a?){4}", nil), ("(?:x){30}", nil), ("(?i)(report|chart)s?", nil),
    ])
    func risky(pattern: String, problem: CompiledRegex.Problem?) {
        #expect(CompiledRegex.riskyShape(pattern) == problem)
    }

    @Test("a repeated alternation in a rules file is a diagnostic at the pattern")
    func alternationDiagnostic() {
        let yaml = rulesYAML(rules: "  - { id: r, weight: 1, when: { regex: '(a|aa)+$' } }")
        #expect(load(yaml).diagnostics.map(\.description) == [
            "rules.yaml:10:40: error: rule \"r\": regex repeats an alternation without bound, like (a|aa)+, which can "
                + "backtrack catastrophically; use a character class ([ab]+) or repeat each branch",
        ])
    }
}

extension RegexSafetyTests {
    @Test("a bounded repetition of a group whose length varies is a diagnostic at the pattern, so `rules check` refuses it")
    func repeatedVariableDiagnostic() {
        let yaml = rulesYAML(rules: "  - { id: r, weight: 1, when: { regex: '(?:a?){23}a{23}' } }")
        #expect(load(yaml).diagnostics.map(\.description) == [
            "rules.yaml:10:40: error: rule \"r\": regex repeats 23 times a group whose length varies, like (a?){20} or (.*a){12}, "
                + "which can backtrack catastrophically; repeat it at most 4 times (2 when it holds * or +), or make its length fixed",
        ])
    }
}

@Suite("Did you mean")
struct SuggestionTests {
    @Test(arguments: [
        ("regx", "regex"), ("wehn", "when"), ("any_keyword", "any_keywords"), ("min_char", "min_chars"), ("wieght", "weight"),
        ("colour", nil), ("x", nil),
    ] as [(String, String?)])
    func closest(name: String, expected: String?) {
        let known = RuleSetParser.conditionKeys + RuleSetParser.ruleKeys
        #expect(Suggestion.closest(to: name, in: known) == expected)
    }
}

@Suite("Analysis bounds", .timeLimit(.minutes(1)))
struct AnalysisBoundsTests {
    @Test("a regex that backtracks catastrophically stops at the analysis deadline instead of running for minutes")
    func regexDeadline() throws {
        // Refused at load; compiled here without the checks to stand for a shape the checks do not know.
        let regex = try CompiledRegex(unchecked: "(x+x+)+y")
        let text = String(repeating: "x", count: 257)
        let started = ContinuousClock.now
        let ranges = regex.matches(in: text, length: text.utf16.count, deadline: started + .milliseconds(20))
        #expect(ranges.isEmpty)
        // 2^257 steps would take forever; returning at all within the test's limit shows the deadline worked.
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test("a short text gets the deadline too: 23 characters against a bounded repetition the check now refuses stop within the budget",
          arguments: ["(?:a?){23}a{23}", "^(.*a){12}$"])
    func shortTextDeadline(pattern: String) throws {
        #expect(CompiledRegex.riskyShape(pattern) != nil, "refused at load")
        let regex = try CompiledRegex(unchecked: pattern)
        let text = String(repeating: "a", count: 22) + "b"
        let started = ContinuousClock.now
        _ = regex.matches(in: text, length: text.utf16.count, deadline: started + .milliseconds(20))
        // Unbounded, these took seconds of CPU (13.6 s for the first); the budget is 20 ms, ICU calls back about every
        // few milliseconds of matching.
        #expect(ContinuousClock.now - started < .milliseconds(500))
    }

    @Test("scan_limit is capped")
    func scanLimitCap() {
        let yaml = rulesYAML(rules: "  - { id: r, weight: 1, when: { min_chars: 1 } }")
            .replacingOccurrences(of: "analyze: { history: 0 }", with: "analyze: { history: 0, scan_limit: 5000000 }")
        #expect(load(yaml).diagnostics.map(\.description) == [
            "rules.yaml:2:36: error: analyze.scan_limit: at most 100000 characters, found 5000000",
        ])
    }

    @Test("a configuration file over 1 MiB is refused before it is read")
    func fileSizeCap() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("huge-\(UUID().uuidString).yaml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(("version: 1\n# " + String(repeating: "x", count: 2 << 20) + "\n").utf8).write(to: URL(fileURLWithPath: path))
        let outcome = RulesFile.load(.file(path))
        #expect(outcome.accepted == nil)
        #expect(outcome.diagnostics.first?.message.hasPrefix("the file is 2097166 bytes; a configuration file may be at most 1 MiB") == true)
    }
}
