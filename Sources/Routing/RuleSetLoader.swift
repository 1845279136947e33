import ChatCore
import Semantic

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
    ///
    /// A file with a `semantic:` section gets its stage from `semantic` (the model, and a reader for the labelled
    /// sets it names): the classifier is trained here, before the examples run, so they gate it too. Without the
    /// model the rules decide alone, said as a warning.
    public static func load(yaml: String, path: String, fingerprint: String, environment: Set<String>? = nil,
                            readableKeyVariables: Set<String>? = nil, semantic: SemanticInputs? = nil) -> Outcome {
        var parser = RuleSetParser(path: path, environment: environment, readableKeyVariables: readableKeyVariables)
        guard var ruleSet = parser.parse(yaml, fingerprint: fingerprint) else {
            return Outcome(compiled: nil, diagnostics: sorted(parser.diagnostics), exampleResults: [])
        }
        var diagnostics = parser.diagnostics
        if let settings = ruleSet.semanticSettings {
            diagnostics += attachSemantic(settings, to: &ruleSet, inputs: semantic)
            if diagnostics.hasErrors { return Outcome(compiled: nil, diagnostics: sorted(diagnostics), exampleResults: []) }
        }
        let results = ExampleRunner.run(ruleSet)
        let failures = results.compactMap { result -> Diagnostic? in
            guard !result.passed else { return nil }
            return Diagnostic(.error, result.failureSummary, path: path, line: result.example.line, column: result.example.column)
        }
        return Outcome(compiled: ruleSet, diagnostics: sorted(diagnostics + failures), exampleResults: results)
    }

    /// Builds the semantic stage of `ruleSet`: its labelled examples (the file's own `examples:` with a level, and
    /// the sets it names, but their holdout split), read as the analyzer reads a chat, and the classifier on them.
    private static func attachSemantic(_ settings: SemanticSettings, to ruleSet: inout RuleSet, inputs: SemanticInputs?) -> [Diagnostic] {
        let at = settings.location
        func warning(_ message: String) -> Diagnostic {
            Diagnostic(.warning, message, path: ruleSet.path, line: at.line, column: at.column)
        }
        guard let inputs else {
            ruleSet.semanticStatus = .off(reason: "no embedding model was given to this load")
            return []
        }
        guard let embeddings = inputs.embeddings else {
            let reason = inputs.missing ?? "the embedding model is not installed"
            ruleSet.semanticStatus = .off(reason: reason)
            return [warning("semantic: \(reason); the rules decide alone")]
        }
        var diagnostics: [Diagnostic] = []
        let analyzer = QueryAnalyzer(rules: ruleSet)
        var examples = ruleSet.fileExamples
        for file in settings.exampleFiles {
            let read = inputs.read(file.path)
            guard let text = read.text else {
                // A set that is not there is left out (a rules file copied on its own still serves); one that does not
                // parse refuses the file, below.
                diagnostics.append(Diagnostic(.warning, "semantic.examples: \(file.path): \(read.problem ?? "cannot be read"); "
                                              + "the stage learns without it", path: ruleSet.path,
                                              line: file.location.line, column: file.location.column))
                continue
            }
            let (set, problems) = EvaluationSet.load(yaml: text, path: read.path, rules: ruleSet)
            diagnostics += problems
            for labelled in set?.cases ?? [] where labelled.split != "holdout" {
                guard let analysed = analyzer.analysedText(labelled.input) else { continue }
                examples.append(LabelledText(text: analysed, level: labelled.expectedLevel, source: "\(file.path):\(labelled.location.line)"))
            }
        }
        guard !diagnostics.hasErrors else { return diagnostics }
        guard examples.count >= SemanticStage.minExamples else {
            let reason = "\(examples.count) labelled examples are too few to learn from (at least \(SemanticStage.minExamples))"
            ruleSet.semanticStatus = .off(reason: reason)
            return diagnostics + [warning("semantic: \(reason); the rules decide alone")]
        }
        let levels = ruleSet.levels.map(\.name)
        let (classifier, elapsed) = SemanticStage.train(examples, levels: levels, settings: settings, embeddings: embeddings)
        ruleSet.semantic = SemanticStage(settings: settings, embeddings: embeddings, classifier: classifier, trainingTime: elapsed)
        ruleSet.semanticStatus = .on(model: embeddings.name, examples: classifier.training.examples,
                                     trainingMilliseconds: Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)
        return diagnostics
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
