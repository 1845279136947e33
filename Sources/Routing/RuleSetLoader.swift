import ChatCore

/// Loads rules YAML: parse, validate, compile, then run the file's examples. Pure: text in, values out.
public enum RuleSetLoader {
    /// What a load produced.
    public struct Outcome: Sendable {
        /// The compiled rules, if the file parsed and validated (even when examples failed).
        public let compiled: RuleSet?
        /// Every problem, in file order; example failures are errors.
        public let diagnostics: [Diagnostic]
        public let exampleResults: [ExampleResult]

        /// The rules to serve: present only when nothing is an error.
        public var accepted: RuleSet? { diagnostics.hasErrors ? nil : compiled }

        /// An outcome for a file that could not even be read.
        public static func rejected(_ diagnostics: [Diagnostic]) -> Outcome {
            Outcome(compiled: nil, diagnostics: diagnostics, exampleResults: [])
        }
    }

    /// Loads `yaml`; with `environment` (the names of the environment's variables), a provider whose
    /// `api_key_env` is not among them is an error, and so is one not among `readableKeyVariables` (what the
    /// process allows providers to read, `ProviderKeyVariables.readable`).
    public static func load(yaml: String, path: String, fingerprint: String, environment: Set<String>? = nil,
                            readableKeyVariables: Set<String>? = nil) -> Outcome {
        var parser = RuleSetParser(path: path, environment: environment, readableKeyVariables: readableKeyVariables)
        guard let ruleSet = parser.parse(yaml, fingerprint: fingerprint) else {
            return Outcome(compiled: nil, diagnostics: sorted(parser.diagnostics), exampleResults: [])
        }
        let results = ExampleRunner.run(ruleSet)
        let failures = results.compactMap { result -> Diagnostic? in
            guard !result.passed else { return nil }
            return Diagnostic(.error, result.failureSummary, path: path, line: result.example.line, column: result.example.column)
        }
        return Outcome(compiled: ruleSet, diagnostics: sorted(parser.diagnostics + failures), exampleResults: results)
    }

    private static func sorted(_ diagnostics: [Diagnostic]) -> [Diagnostic] {
        diagnostics.enumerated().sorted {
            ($0.element.line, $0.element.column, $0.offset) < ($1.element.line, $1.element.column, $1.offset)
        }.map(\.element)
    }
}

/// One example checked against its rules.
public struct ExampleResult: Sendable {
    public let example: Example
    public let analysis: Analysis
    /// What differed from the expectation, one phrase each; empty when the example passed.
    public let mismatches: [String]

    public var passed: Bool { mismatches.isEmpty }

    var failureSummary: String {
        "example \"\(example.query)\" failed: \(mismatches.joined(separator: "; ")) (score \(analysis.score.compactText)"
            + (analysis.matchedRules.isEmpty ? ", no rules matched)"
               : " from \(analysis.matchedRules.map { "\($0.id) \($0.weight.compactText)" }.joined(separator: ", ")))")
    }
}

/// Runs a rule set's examples.
public enum ExampleRunner {
    public static func run(_ rules: RuleSet) -> [ExampleResult] {
        let analyzer = QueryAnalyzer(rules: rules)
        return rules.examples.compactMap { example in
            guard let analysis = analyzer.analyze(AnalysisInput(query: example.query)) else { return nil }
            var mismatches: [String] = []
            let expect = example.expect
            if let level = expect.level, level != analysis.level.name {
                mismatches.append("expected level \(level), got \(analysis.level.name)")
            }
            if let route = expect.route, route != analysis.route.name {
                mismatches.append("expected route \(route), got \(analysis.route.name)")
            }
            if let score = expect.score, score != analysis.score {
                mismatches.append("expected score \(score.compactText), got \(analysis.score.compactText)")
            }
            if let ids = expect.rules, Set(ids) != Set(analysis.matchedRules.map(\.id)) {
                let got = analysis.matchedRules.map(\.id)
                mismatches.append("expected rules [\(ids.joined(separator: ", "))], got [\(got.joined(separator: ", "))]")
            }
            return ExampleResult(example: example, analysis: analysis, mismatches: mismatches)
        }
    }
}

/// Which environment variables a rules file's providers may read their key from: an allowlist kept outside the
/// rules file, by whoever starts the process (`SWITCHBOARD_PROVIDER_KEY_VARS`, names separated by commas), so a
/// rules file cannot send any secret of the environment (`AWS_SECRET_ACCESS_KEY`, say) to a host it names.
/// Unset: `ANTHROPIC_API_KEY` and `OPENAI_API_KEY`.
public enum ProviderKeyVariables {
    public static let setting = "SWITCHBOARD_PROVIDER_KEY_VARS"
    public static let defaults: Set<String> = ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]

    /// The allowed names in `environment`.
    public static func readable(in environment: [String: String]) -> Set<String> {
        guard let list = environment[setting] else { return defaults }
        return Set(list.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init))
    }
}
