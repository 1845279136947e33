/// How a rule set classified a labelled set: accuracy, the confusion matrix, what each rule fired on, and
/// every miss with its reasons. Encodes as the JSON of `switchboard rules eval --json`.
public struct EvaluationReport: Encodable, Sendable {
    /// A case the rules got wrong.
    public struct Miss: Encodable, Sendable {
        public let line: Int
        public let column: Int
        public let text: String
        public let expectedLevel: String
        public let expectedRoute: String?
        public let level: String
        public let route: String
        public let score: Double
        public let rules: [String]
        /// With a semantic stage: who decided, the rules' level, the stage's level with its probability, and the
        /// labelled example nearest the chat.
        public var decidedBy: String? = nil
        public var rulesLevel: String? = nil
        public var semanticLevel: String? = nil
        public var semanticProbability: Double? = nil
        public var nearest: String? = nil
    }

    /// One stage's score on the same cases (levels only): the rules alone, the semantic stage alone, and both as
    /// the file combines them.
    public struct StageScore: Encodable, Sendable {
        public let stage: String
        public let correct: Int
        public let cases: Int
        public let accuracy: Double
        /// `confusion[expected][predicted]`, indexed as the report's `levels`.
        public let confusion: [[Int]]
        public let topLevelRecall: Double?
    }

    /// How often a rule fired, by the level its cases were labelled with.
    public struct RuleHits: Encodable, Sendable {
        public let id: String
        public let byExpectedLevel: [String: Int]
        public let total: Int
    }

    /// Accuracy on the cases that carry a tag (`trap`, `typo`, …).
    public struct TagScore: Encodable, Sendable {
        public let tag: String
        public let correct: Int
        public let cases: Int
    }

    /// Which part of the set was evaluated: `tune`, `holdout`, or `all`.
    public let split: String
    public let cases: Int
    public let correct: Int
    /// `correct / cases`; 0 for an empty set.
    public let accuracy: Double
    /// The levels, lowest first: the order of the confusion matrix's rows and columns.
    public let levels: [String]
    /// `confusion[expected][predicted]`, indexed as `levels`.
    public let confusion: [[Int]]
    /// Per level, the share of its cases classified at that level (recall); levels without cases are left out.
    public let recall: [String: Double]
    public let rules: [RuleHits]
    public let tags: [TagScore]
    public let misses: [Miss]
    /// With a semantic stage serving: the rules alone, the stage alone, and combined; empty without one.
    public var stages: [StageScore] = []

    /// The recall of the highest level (the costliest to miss: a complex chat streamed instead of advised).
    public var topLevelRecall: Double? { levels.last.flatMap { recall[$0] } }
}

/// Runs a rule set over labelled cases. Pure: values in, a report out.
public enum RoutingEvaluation {
    /// Whether the analysis gives the case's level, and its route when the case names one.
    static func isCorrect(_ evaluationCase: EvaluationCase, level: String, route: String) -> Bool {
        level == evaluationCase.expectedLevel && (evaluationCase.expectedRoute.map { $0 == route } ?? true)
    }

    public static func run(_ rules: RuleSet, on cases: [EvaluationCase], split: String) -> EvaluationReport {
        let analyzer = QueryAnalyzer(rules: rules)
        let levels = rules.levels.map(\.name)
        let levelIndex = Dictionary(uniqueKeysWithValues: levels.enumerated().map { ($1, $0) })
        var confusion = Array(repeating: Array(repeating: 0, count: levels.count), count: levels.count)
        var hits: [String: [String: Int]] = [:]
        var tagCounts: [String: (correct: Int, cases: Int)] = [:]
        var misses: [EvaluationReport.Miss] = []
        var correct = 0
        let staged = rules.semantic != nil
        var stageConfusion = Array(repeating: confusion, count: 3)
        for evaluationCase in cases {
            guard let analysis = analyzer.analyze(evaluationCase.input),
                  let expected = levelIndex[evaluationCase.expectedLevel], let predicted = levelIndex[analysis.level.name] else { continue }
            confusion[expected][predicted] += 1
            if staged {
                let alone = analysis.semantic?.stageLevel ?? analysis.rulesLevel
                for (stage, level) in [analysis.rulesLevel, alone, analysis.level.name].enumerated() {
                    if let index = levelIndex[level] { stageConfusion[stage][expected][index] += 1 }
                }
            }
            for rule in analysis.matchedRules { hits[rule.id, default: [:]][evaluationCase.expectedLevel, default: 0] += 1 }
            let right = isCorrect(evaluationCase, level: analysis.level.name, route: analysis.route.name)
            if right { correct += 1 }
            for tag in evaluationCase.tags {
                tagCounts[tag, default: (0, 0)].cases += 1
                if right { tagCounts[tag, default: (0, 0)].correct += 1 }
            }
            if !right {
                var miss = EvaluationReport.Miss(line: evaluationCase.location.line, column: evaluationCase.location.column,
                                                 text: evaluationCase.text, expectedLevel: evaluationCase.expectedLevel,
                                                 expectedRoute: evaluationCase.expectedRoute, level: analysis.level.name,
                                                 route: analysis.route.name, score: analysis.score, rules: analysis.matchedRules.map(\.id))
                if let semantic = analysis.semantic {
                    miss.decidedBy = semantic.decidedBy.rawValue
                    miss.rulesLevel = semantic.rulesLevel
                    miss.semanticLevel = semantic.stageLevel
                    miss.semanticProbability = semantic.verdict.map { AnalysisReport.thousandths($0.top.probability) }
                    miss.nearest = semantic.verdict?.nearest.first.map { "\($0.text.debugDescription) \(AnalysisReport.thousandths($0.similarity)) \($0.level)" }
                }
                misses.append(miss)
            }
        }
        var recall: [String: Double] = [:]
        for (index, name) in levels.enumerated() {
            let total = confusion[index].reduce(0, +)
            if total > 0 { recall[name] = Double(confusion[index][index]) / Double(total) }
        }
        let evaluated = confusion.joined().reduce(0, +)
        var stages: [EvaluationReport.StageScore] = []
        if staged {
            for (stage, name) in ["rules", "semantic", "combined"].enumerated() {
                let matrix = stageConfusion[stage]
                let right = levels.indices.reduce(0) { $0 + matrix[$1][$1] }
                let top = levels.count - 1
                let topCases = matrix[top].reduce(0, +)
                stages.append(.init(stage: name, correct: right, cases: evaluated, accuracy: evaluated == 0 ? 0 : Double(right) / Double(evaluated),
                                    confusion: matrix, topLevelRecall: topCases == 0 ? nil : Double(matrix[top][top]) / Double(topCases)))
            }
        }
        var report = EvaluationReport(
            split: split, cases: evaluated, correct: correct, accuracy: evaluated == 0 ? 0 : Double(correct) / Double(evaluated),
            levels: levels, confusion: confusion, recall: recall,
            rules: rules.rules.map { rule in
                let byLevel = hits[rule.id] ?? [:]
                return .init(id: rule.id, byExpectedLevel: byLevel, total: byLevel.values.reduce(0, +))
            },
            tags: tagCounts.keys.sorted().map { .init(tag: $0, correct: tagCounts[$0]!.correct, cases: tagCounts[$0]!.cases) },
            misses: misses)
        report.stages = stages
        return report
    }
}
