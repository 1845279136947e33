import ChatCore

/// Searches rule weights and level thresholds for a better fit on labelled cases, keeping every `examples:`
/// entry of the rules file passing. Which rules match a chat does not depend on weights or thresholds, so each
/// case is analysed once and every candidate is scored by arithmetic: a search costs milliseconds.
public enum RuleTuner {
    /// One value to change in the rules file.
    public struct Change: Sendable, Hashable {
        public enum Target: Sendable, Hashable {
            case weight(rule: String)
            case maxScore(level: String)
        }

        public let target: Target
        public let old: Double
        public let new: Double
        /// Where the value is written; for a rule without `weight`, where the rule starts.
        public let location: SourceLocation
        /// Whether the value is written in the file (otherwise a `weight:` must be added).
        public let written: Bool
    }

    public struct Result: Sendable {
        public let changes: [Change]
        /// The rules with the changes made, to measure them on other cases.
        public let tuned: RuleSet
        /// Correct cases before and after, on the cases searched.
        public let correctBefore: Int
        public let correctAfter: Int
        public let cases: Int
    }

    /// A case reduced to what the score needs: the rules it matches and the route one of them forces.
    struct Footprint {
        let matched: [Int]
        let forcedRoute: String?
        let expectedLevel: Int
        let expectedRoute: String?
        let expectedScore: Double?
    }

    /// The weights and thresholds being searched.
    struct Parameters: Equatable {
        var weights: [Double]
        /// `max_score` of every level but the last.
        var thresholds: [Double]
    }

    static let weightCandidates = stride(from: 0.0, through: 10.0, by: 0.5).map { $0 }
    static let thresholdCandidates = stride(from: 0.5, through: 15.0, by: 0.5).map { $0 }

    /// Searches from the file's values; stops when no single change improves the fit (coordinate descent,
    /// best change first), or after `maxRounds` changes.
    public static func suggest(_ rules: RuleSet, cases: [EvaluationCase], maxRounds: Int = 40) -> Result {
        let levelIndex = Dictionary(uniqueKeysWithValues: rules.levels.enumerated().map { ($1.name, $0) })
        let footprints = cases.compactMap { footprint($0.input, rules: rules, levelIndex: levelIndex, level: $0.expectedLevel,
                                                    route: $0.expectedRoute, score: nil) }
        let examples = rules.examples.compactMap { example -> Footprint? in
            footprint(AnalysisInput(query: example.query), rules: rules, levelIndex: levelIndex,
                      level: example.expect.level, route: example.expect.route, score: example.expect.score)
        }
        let start = Parameters(weights: rules.rules.map(\.weight), thresholds: rules.levels.dropLast().map { $0.maxScore ?? 0 })
        func fit(_ parameters: Parameters) -> (correct: Int, top: Int)? {
            guard examples.allSatisfy({ satisfies($0, parameters, rules) }) else { return nil }
            var correct = 0
            var top = 0
            for footprint in footprints where satisfies(footprint, parameters, rules) {
                correct += 1
                if footprint.expectedLevel == rules.levels.count - 1 { top += 1 }
            }
            return (correct, top)
        }
        let before = fit(start) ?? (footprints.filter { satisfies($0, start, rules) }.count, 0)
        var current = start
        var best = before
        for _ in 0..<maxRounds {
            var improvement: (Parameters, (correct: Int, top: Int))?
            for candidate in neighbours(of: current) {
                guard let score = fit(candidate), score > (improvement?.1 ?? best) else { continue }
                improvement = (candidate, score)
            }
            guard let (parameters, score) = improvement else { break }
            current = parameters
            best = score
        }
        var changes: [Change] = []
        for (index, rule) in rules.rules.enumerated() where current.weights[index] != rule.weight {
            changes.append(Change(target: .weight(rule: rule.id), old: rule.weight, new: current.weights[index],
                                  location: rule.weightLocation ?? rule.location, written: rule.weightLocation != nil))
        }
        for (index, level) in rules.levels.dropLast().enumerated() where current.thresholds[index] != level.maxScore {
            changes.append(Change(target: .maxScore(level: level.name), old: level.maxScore ?? 0, new: current.thresholds[index],
                                  location: level.maxScoreLocation ?? SourceLocation(line: 0, column: 0), written: true))
        }
        changes.sort { ($0.location.line, $0.location.column) < ($1.location.line, $1.location.column) }
        return Result(changes: changes, tuned: rules.with(weights: current.weights, thresholds: current.thresholds),
                      correctBefore: before.correct, correctAfter: best.correct, cases: footprints.count)
    }

    /// Every parameter set one value away from `parameters`, thresholds kept increasing.
    static func neighbours(of parameters: Parameters) -> [Parameters] {
        var result: [Parameters] = []
        for index in parameters.weights.indices {
            for value in weightCandidates where value != parameters.weights[index] {
                var next = parameters
                next.weights[index] = value
                result.append(next)
            }
        }
        for index in parameters.thresholds.indices {
            let lower = index > 0 ? parameters.thresholds[index - 1] : -Double.infinity
            let upper = index + 1 < parameters.thresholds.count ? parameters.thresholds[index + 1] : Double.infinity
            for value in thresholdCandidates where value != parameters.thresholds[index] && value > lower && value < upper {
                var next = parameters
                next.thresholds[index] = value
                result.append(next)
            }
        }
        return result
    }

    static func footprint(_ input: AnalysisInput, rules: RuleSet, levelIndex: [String: Int], level: String?, route: String?,
                          score: Double?) -> Footprint? {
        guard let analysis = QueryAnalyzer(rules: rules).analyze(input) else { return nil }
        let ids = Dictionary(uniqueKeysWithValues: rules.rules.enumerated().map { ($1.id, $0) })
        return Footprint(matched: analysis.matchedRules.compactMap { ids[$0.id] }, forcedRoute: analysis.routeForcedBy.flatMap {
            ids[$0].flatMap { rules.rules[$0].route }
        }, expectedLevel: level.flatMap { levelIndex[$0] } ?? -1, expectedRoute: route, expectedScore: score)
    }

    /// Whether the footprint gets its expected level, route and score under `parameters`.
    static func satisfies(_ footprint: Footprint, _ parameters: Parameters, _ rules: RuleSet) -> Bool {
        let score = footprint.matched.reduce(0) { $0 + parameters.weights[$1] }
        if let expected = footprint.expectedScore, expected != score { return false }
        let level = parameters.thresholds.firstIndex { $0 >= score } ?? rules.levels.count - 1
        if footprint.expectedLevel >= 0, level != footprint.expectedLevel { return false }
        if let route = footprint.expectedRoute, route != footprint.forcedRoute ?? rules.levels[level].route { return false }
        return true
    }
}

extension RuleTuner.Result {
    /// The changes as lines of the rules file `yaml`: each written value replaced in its line, ready to paste;
    /// a rule without a weight gets a note to add one.
    public func editedLines(of yaml: String, path: String) -> [String] {
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        return changes.map { change in
            let what: String = switch change.target {
            case .weight(let rule): "rule \"\(rule)\": weight \(change.old.compactText) → \(change.new.compactText)"
            case .maxScore(let level): "level \"\(level)\": max_score \(change.old.compactText) → \(change.new.compactText)"
            }
            let line = change.location.line
            guard change.written, line >= 1, line <= lines.count else {
                return "\(path):\(line): \(what) (add \"weight: \(change.new.compactText)\" to the rule)"
            }
            return "\(path):\(line): \(what)\n    " + Self.replacingNumber(in: lines[line - 1], at: change.location.column, with: change.new)
        }
    }

    /// `text` with the number that starts at 1-based `column` replaced by `value`.
    static func replacingNumber(in text: String, at column: Int, with value: Double) -> String {
        var scalars = Array(text.unicodeScalars)
        let start = max(0, column - 1)
        var end = start
        while end < scalars.count, "0123456789.-+eE".unicodeScalars.contains(scalars[end]) { end += 1 }
        guard start < scalars.count, end > start else { return text }
        scalars.replaceSubrange(start..<end, with: value.compactText.unicodeScalars)
        var result = ""
        result.unicodeScalars.append(contentsOf: scalars)
        return result
    }
}

extension RuleSet {
    /// The same rules with other weights (one per rule, in order) and level thresholds (one per level but the last).
    func with(weights: [Double], thresholds: [Double]) -> RuleSet {
        let rules = zip(self.rules, weights).map { rule, weight in
            Rule(id: rule.id, description: rule.description, weight: weight, route: rule.route, location: rule.location,
                 weightLocation: rule.weightLocation, condition: rule.condition, decides: rule.decides)
        }
        let levels = self.levels.enumerated().map { index, level in
            Level(name: level.name, maxScore: index < thresholds.count ? thresholds[index] : level.maxScore, route: level.route,
                  estimatedSeconds: level.estimatedSeconds, maxScoreLocation: level.maxScoreLocation,
                  estimatedSecondsLocation: level.estimatedSecondsLocation)
        }
        var tuned = RuleSet(schemaVersion: schemaVersion, fingerprint: fingerprint, history: history, followUp: followUp,
                            scanLimit: scanLimit, levels: levels, routes: routes, providers: providers, rules: rules, examples: examples,
                            review: review, keywords: keywords, rulesByKeyword: rulesByKeyword, alwaysEvaluated: alwaysEvaluated,
                            usesPrefilter: usesPrefilter, path: path, semanticSettings: semanticSettings)
        tuned.semantic = semantic
        tuned.semanticStatus = semanticStatus
        return tuned
    }
}
