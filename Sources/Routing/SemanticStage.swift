import Semantic
import Synchronization

/// The rules file's `semantic:` section: where the classifier's labelled examples are, and how it and the rules
/// decide together (Docs/RULES.md, "The semantic stage").
public struct SemanticSettings: Sendable, Hashable {
    public struct ExampleFile: Sendable, Hashable {
        /// As the file writes it: relative to the rules file's folder.
        public var path: String
        public var location: SourceLocation
    }

    /// Labelled sets in the format of `routing-eval.yaml`; their `split: holdout` cases are never learned.
    public var exampleFiles: [ExampleFile] = []
    /// Below this probability of its best level, the semantic stage does not decide: the rules do.
    public var minConfidence = 0.75
    /// What the rules' level adds to that level's probability when any rule matched (0: the stage alone decides).
    public var rulesWeight = 0.3
    /// A labelled example at least this similar to the chat decides its level outright (its paraphrase).
    public var matchSimilarity = 0.85
    /// How many nearest examples the explanation shows.
    public var neighbours = 3
    /// The classifier's L2 regularisation.
    public var regularization = 0.02
    /// Where the section starts, for diagnostics.
    public var location: SourceLocation
}

/// Whether the semantic stage serves these rules, for `GET /rules`, the log and `rules check`.
public enum SemanticStatus: Sendable, Hashable {
    /// The file has no `semantic:` section.
    case notConfigured
    case on(model: String, examples: Int, trainingMilliseconds: Double)
    /// Configured but not serving (the model's files are missing): the rules decide alone.
    case off(reason: String)
}

/// What the semantic stage made of one chat, and who decided its level.
public struct SemanticOutcome: Sendable, Hashable {
    public enum Decider: String, Sendable, Hashable {
        /// The rules' level (the stage was not confident enough, or agreed).
        case rules
        /// The classifier's level won over the rules'.
        case semantic
        /// A labelled example at least `match_similarity` alike decided.
        case example
        /// A rule forced the route.
        case forcedRoute = "forced_route"
        /// A rule with `decides: true` matched.
        case decidingRule = "deciding_rule"
        /// The text is not one the model reads (another script, no words): the rules decide.
        case notRead = "not_read"
    }

    /// The classifier's probabilities and the nearest examples; `nil` when the text was not read.
    public var verdict: SemanticVerdict?
    public var decidedBy: Decider
    /// The level the rules alone gave.
    public var rulesLevel: String
    /// The level the stage alone gives (its most probable, or the matching example's).
    public var stageLevel: String?
    /// The deciding rule's id, with `decidingRule`.
    public var rule: String?
    /// The level decided.
    public var level: String
}

/// The semantic stage of one rules file: the embedding model and the classifier trained on the file's labelled
/// examples. Built by the loader at every load (the training is kept for identical examples in a process).
public final class SemanticStage: Sendable {
    public let settings: SemanticSettings
    public let embeddings: StaticEmbeddings
    public let classifier: LevelClassifier
    /// How long the training took (zero when an identical one was reused).
    public let trainingTime: Duration

    init(settings: SemanticSettings, embeddings: StaticEmbeddings, classifier: LevelClassifier, trainingTime: Duration) {
        self.settings = settings
        self.embeddings = embeddings
        self.classifier = classifier
        self.trainingTime = trainingTime
    }

    /// The share of a text's letters that must be Latin for the model (English WordPiece, tuned on English,
    /// German, French, Spanish and Portuguese) to read it; below it the rules decide alone.
    static let minLatinShare = 0.6

    /// Fewer labelled examples than this teach a classifier nothing it should decide on: the rules decide alone.
    public static let minExamples = 30

    /// Decides `text`'s level with the rules' verdict on it.
    func decide(_ text: String, rulesLevel: String, rulesMatched: Bool, forcedBy: String?, decidingRule: String?) -> SemanticOutcome {
        var outcome = SemanticOutcome(verdict: nil, decidedBy: .rules, rulesLevel: rulesLevel, stageLevel: nil, rule: nil, level: rulesLevel)
        guard Self.isRead(text) else {
            outcome.decidedBy = forcedBy != nil ? .forcedRoute : decidingRule != nil ? .decidingRule : .notRead
            outcome.rule = forcedBy ?? decidingRule
            return outcome
        }
        let verdict = classifier.verdict(embeddings.embed(text), neighbours: max(settings.neighbours, 1))
        outcome.verdict = verdict
        let nearest = verdict.nearest.first
        let matched = nearest.flatMap { $0.similarity >= settings.matchSimilarity ? $0 : nil }
        outcome.stageLevel = matched?.level ?? verdict.top.level
        if settings.neighbours == 0 { outcome.verdict?.nearest = [] } else if verdict.nearest.count > settings.neighbours {
            outcome.verdict?.nearest = Array(verdict.nearest.prefix(settings.neighbours))
        }
        if let forcedBy {
            outcome.decidedBy = .forcedRoute
            outcome.rule = forcedBy
            return outcome
        }
        if let decidingRule {
            outcome.decidedBy = .decidingRule
            outcome.rule = decidingRule
            return outcome
        }
        if let matched {
            outcome.decidedBy = matched.level == rulesLevel ? .rules : .example
            outcome.level = matched.level
            return outcome
        }
        let top = verdict.top
        guard top.probability >= settings.minConfidence else { return outcome }
        var best = rulesLevel
        var bestScore = -Double.infinity
        for (level, probability) in verdict.probabilities {
            let score = probability + (rulesMatched && level == rulesLevel ? settings.rulesWeight : 0)
            if score > bestScore {
                bestScore = score
                best = level
            }
        }
        outcome.level = best
        outcome.decidedBy = best == rulesLevel ? .rules : .semantic
        return outcome
    }

    /// Whether the model reads `text`: at least two letters, most of them Latin.
    static func isRead(_ text: String) -> Bool {
        var letters = 0
        var latin = 0
        for scalar in text.unicodeScalars where scalar.properties.isAlphabetic {
            letters += 1
            let value = scalar.value
            if value < 0x250 || (0x1E00...0x1EFF).contains(value) { latin += 1 }
        }
        return letters >= 2 && Double(latin) >= Self.minLatinShare * Double(letters)
    }

    // MARK: Training, kept per process for identical inputs

    private struct TrainingKey: Hashable {
        let model: String
        let regularization: Double
        let levels: [String]
        let examples: [LabelledText]
    }

    private static let trained = Mutex<[(key: TrainingKey, classifier: LevelClassifier)]>([])

    /// The classifier for `examples`, trained now or reused when an identical set was trained in this process.
    static func train(_ examples: [LabelledText], levels: [String], settings: SemanticSettings, embeddings: StaticEmbeddings)
        -> (LevelClassifier, Duration)
    {
        let key = TrainingKey(model: embeddings.fingerprint, regularization: settings.regularization, levels: levels, examples: examples)
        if let found = trained.withLock({ $0.first { $0.key == key }?.classifier }) { return (found, .zero) }
        let clock = ContinuousClock()
        let started = clock.now
        let classifier = LevelClassifier(examples: examples, levels: levels, regularization: settings.regularization) { embeddings.embed($0) }
        let elapsed = clock.now - started
        trained.withLock { cache in
            cache.append((key, classifier))
            if cache.count > 8 { cache.removeFirst() }
        }
        return (classifier, elapsed)
    }
}

/// What the loader needs to build a file's semantic stage, from the edge that reads files: the embedding model
/// (or why there is none) and a reader for the labelled sets the file names.
public struct SemanticInputs: Sendable {
    public var embeddings: StaticEmbeddings?
    /// Why `embeddings` is `nil`, said at `warning` and in `GET /rules`.
    public var missing: String?
    /// A labelled set's text by the path the rules file writes; the path as read (for its diagnostics), or a problem.
    public var read: @Sendable (String) -> (text: String?, path: String, problem: String?)

    public init(embeddings: StaticEmbeddings?, missing: String? = nil,
                read: @escaping @Sendable (String) -> (text: String?, path: String, problem: String?)) {
        self.embeddings = embeddings
        self.missing = missing
        self.read = read
    }
}

extension RuleSet {
    /// The same rules with their semantic stage trained on `examples` instead (for cross-validation); unchanged
    /// without a stage.
    public func withSemanticExamples(_ examples: [LabelledText]) -> RuleSet {
        guard let stage = semantic else { return self }
        var copy = self
        let (classifier, elapsed) = SemanticStage.train(examples, levels: levels.map(\.name), settings: stage.settings, embeddings: stage.embeddings)
        copy.semantic = SemanticStage(settings: stage.settings, embeddings: stage.embeddings, classifier: classifier, trainingTime: elapsed)
        return copy
    }

    /// The same rules with other combination settings (for choosing them by cross-validation).
    public func withSemanticSettings(_ change: (inout SemanticSettings) -> Void) -> RuleSet {
        guard let stage = semantic else { return self }
        var settings = stage.settings
        change(&settings)
        var copy = self
        copy.semantic = SemanticStage(settings: settings, embeddings: stage.embeddings, classifier: stage.classifier, trainingTime: stage.trainingTime)
        return copy
    }

    /// The file's own examples that name a level, as the stage learns them (with the sets it names).
    public var fileExamples: [LabelledText] {
        examples.compactMap { example in
            example.expect.level.map { LabelledText(text: example.query, level: $0, source: "\(path):\(example.line)") }
        }
    }
}

extension RoutingEvaluation {
    /// `folds`-fold cross-validation of the semantic stage on `cases`: each fold analysed by the rules with the
    /// classifier trained on the file's own examples and the other folds (never on the fold itself), folds taken
    /// by the cases' order (every `folds`-th case). One report over every case, as `run` gives.
    public static func crossValidate(_ rules: RuleSet, on cases: [EvaluationCase], folds: Int, split: String) -> EvaluationReport {
        guard rules.semantic != nil, folds > 1 else { return run(rules, on: cases, split: split) }
        let analyzer = QueryAnalyzer(rules: rules)
        let labelled = cases.map { evaluationCase in
            analyzer.analysedText(evaluationCase.input).map { LabelledText(text: $0, level: evaluationCase.expectedLevel, source: "\(evaluationCase.location.line)") }
        }
        var reports: [EvaluationReport] = []
        for fold in 0..<folds {
            let training = rules.fileExamples + labelled.enumerated().compactMap { $0.offset % folds == fold ? nil : $0.element }
            let held = cases.enumerated().compactMap { $0.offset % folds == fold ? $0.element : nil }
            reports.append(run(rules.withSemanticExamples(training), on: held, split: split))
        }
        return merge(reports, split: split)
    }

    /// One report from several on disjoint cases.
    static func merge(_ reports: [EvaluationReport], split: String) -> EvaluationReport {
        guard var merged = reports.first else { return EvaluationReport(split: split, cases: 0, correct: 0, accuracy: 0, levels: [], confusion: [], recall: [:], rules: [], tags: [], misses: []) }
        func add(_ a: [[Int]], _ b: [[Int]]) -> [[Int]] { zip(a, b).map { zip($0, $1).map(+) } }
        for report in reports.dropFirst() {
            var confusion = add(merged.confusion, report.confusion)
            let cases = merged.cases + report.cases, correct = merged.correct + report.correct
            var tags: [String: (Int, Int)] = [:]
            for tag in merged.tags + report.tags { tags[tag.tag, default: (0, 0)].0 += tag.correct; tags[tag.tag, default: (0, 0)].1 += tag.cases }
            let stages = zip(merged.stages, report.stages).map { a, b in
                EvaluationReport.StageScore(stage: a.stage, correct: a.correct + b.correct, cases: a.cases + b.cases,
                                            accuracy: Double(a.correct + b.correct) / Double(max(1, a.cases + b.cases)),
                                            confusion: add(a.confusion, b.confusion), topLevelRecall: nil)
            }
            let rules = zip(merged.rules, report.rules).map { a, b in
                EvaluationReport.RuleHits(id: a.id, byExpectedLevel: a.byExpectedLevel.merging(b.byExpectedLevel, uniquingKeysWith: +),
                                          total: a.total + b.total)
            }
            var recall: [String: Double] = [:]
            for (index, name) in merged.levels.enumerated() {
                let total = confusion[index].reduce(0, +)
                if total > 0 { recall[name] = Double(confusion[index][index]) / Double(total) }
            }
            let misses = (merged.misses + report.misses).sorted { ($0.line, $0.column) < ($1.line, $1.column) }
            merged = EvaluationReport(split: split, cases: cases, correct: correct, accuracy: Double(correct) / Double(max(1, cases)),
                                      levels: merged.levels, confusion: confusion, recall: recall, rules: rules,
                                      tags: tags.keys.sorted().map { .init(tag: $0, correct: tags[$0]!.0, cases: tags[$0]!.1) }, misses: misses)
            merged.stages = stages
            confusion = merged.confusion
        }
        merged.stages = merged.stages.map { stage in
            let top = stage.confusion.count - 1
            let topCases = top >= 0 ? stage.confusion[top].reduce(0, +) : 0
            return .init(stage: stage.stage, correct: stage.correct, cases: stage.cases, accuracy: stage.accuracy, confusion: stage.confusion,
                         topLevelRecall: topCases == 0 ? nil : Double(stage.confusion[top][top]) / Double(topCases))
        }
        return merged
    }
}
