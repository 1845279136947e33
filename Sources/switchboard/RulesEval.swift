import ArgumentParser
import ChatCore
import Foundation
import Routing
import ConfigFiles

extension Rules {
    struct Eval: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure the rules on a labelled set: accuracy, confusion matrix, rule hits, every miss.",
            discussion: """
                The set is YAML (see routing-eval.yaml and Docs/RULES.md). --suggest searches rule weights and level \
                thresholds for a better fit on the set's tune split, keeping every example of the rules file passing, \
                and prints the lines to change.
                """
        )

        @OptionGroup var file: RulesFileArgument

        @Option(help: "The labelled set.")
        var cases: String

        @Option(help: "Evaluate only this part of the set: tune or holdout (default: all of it).")
        var split: String?

        @Option(help: "Exit with status 1 when the accuracy is below this (0 to 1).")
        var minAccuracy: Double?

        @Flag(help: "Print the report as JSON.")
        var json = false

        @Flag(help: "Search weights and thresholds for a better fit on the tune split and print the changed lines.")
        var suggest = false

        @Option(help: ArgumentHelp("Cross-validate the semantic stage on the evaluated cases in this many folds: each fold is analysed "
                                   + "with the classifier trained on the others (and the rules file's examples), never on itself. "
                                   + "For the cases the stage learns from (the tune split of a set it names).", valueName: "k"))
        var folds: Int?

        @Option(help: ArgumentHelp("With --folds: also try each combination of min_confidence, rules_weight and match_similarity "
                                   + "from these lists (comma-separated, `c;w;m`) and print each one's cross-validated accuracy.",
                                   valueName: "grid"))
        var grid: String?

        func validate() throws {
            if let split, !EvaluationSet.splits.contains(split) {
                throw ValidationError("--split must be tune or holdout (leave it out for the whole set).")
            }
            if let minAccuracy, !(0...1).contains(minAccuracy) {
                throw ValidationError("--min-accuracy is a share between 0 and 1, for example 0.9.")
            }
        }

        func run() async throws {
            let path = file.path
            let rules = try loadRules(path)
            let yaml: String
            switch ConfigFile.read(cases) {
            case .success(let file): yaml = file.text
            case .failure(let unreadable):
                printError(unreadable.diagnostic.description)
                throw ExitCode(2)
            }
            let (set, diagnostics) = EvaluationSet.load(yaml: yaml, path: cases, rules: rules)
            for diagnostic in diagnostics { printError(diagnostic.description) }
            guard let set else { throw ExitCode(2) }

            let chosen = set.cases(in: split)
            if let folds, let grid {
                let lists = grid.split(separator: ";").map { $0.split(separator: ",").compactMap { Double($0) } }
                guard lists.count == 3 else { throw ValidationError("--grid is three comma-separated lists joined by ';'") }
                for confidence in lists[0] {
                    for weight in lists[1] {
                        for similarity in lists[2] {
                            let tried = rules.withSemanticSettings {
                                $0.minConfidence = confidence
                                $0.rulesWeight = weight
                                $0.matchSimilarity = similarity
                            }
                            let report = RoutingEvaluation.crossValidate(tried, on: chosen, folds: folds, split: split ?? "all")
                            let recall = report.topLevelRecall.map { Self.percent($0) } ?? "-"
                            print("min_confidence \(confidence.compactText)  rules_weight \(weight.compactText)  match_similarity \(similarity.compactText):  "
                                  + "\(Self.percent(report.accuracy))  \(report.levels.last ?? "top") recall \(recall)")
                        }
                    }
                }
                return
            }
            let report = folds.map { RoutingEvaluation.crossValidate(rules, on: chosen, folds: $0, split: split ?? "all") }
                ?? RoutingEvaluation.run(rules, on: chosen, split: split ?? "all")
            if json {
                print(String(decoding: try JSONEncoder.sortedKeys.encode(report), as: UTF8.self))
            } else {
                print(Self.describe(report, rules: path, cases: cases))
            }
            if suggest {
                print("")
                try print(Self.suggestion(rules: rules, rulesPath: path, set: set))
            }
            if let minAccuracy, report.accuracy < minAccuracy {
                printError("accuracy \(Self.percent(report.accuracy)) is below --min-accuracy \(Self.percent(minAccuracy))")
                throw ExitCode(1)
            }
        }

        static func percent(_ share: Double) -> String {
            String(format: "%.1f%%", share * 100)
        }

        static func describe(_ report: EvaluationReport, rules: String, cases: String) -> String {
            var lines: [String] = []
            lines.append("\(rules) on \(cases) (\(report.split): \(report.cases) cases)")
            lines.append("accuracy: \(report.correct)/\(report.cases) = \(percent(report.accuracy))"
                         + (report.levels.last.map { top in
                             report.recall[top].map { "   \(top) recall: \(percent($0))" } ?? "" } ?? ""))
            let width = max(9, (report.levels.map(\.count).max() ?? 0) + 2)
            func cell(_ text: String) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
            lines.append("")
            lines.append("confusion (rows: expected, columns: predicted)")
            lines.append(String(repeating: " ", count: width) + report.levels.map(cell).joined())
            for (index, level) in report.levels.enumerated() {
                let recall = report.recall[level].map { "   recall \(percent($0))" } ?? ""
                lines.append(cell(level) + report.confusion[index].map { cell(String($0)) }.joined() + recall)
            }
            if !report.stages.isEmpty {
                lines.append("")
                lines.append("by stage (levels only)")
                for stage in report.stages {
                    let recall = stage.topLevelRecall.map { "   \(report.levels.last ?? "top") recall: \(percent($0))" } ?? ""
                    lines.append("  " + stage.stage.padding(toLength: 10, withPad: " ", startingAt: 0)
                                 + "\(stage.correct)/\(stage.cases) = \(percent(stage.accuracy))" + recall)
                }
            }
            if !report.tags.isEmpty {
                lines.append("")
                lines.append("by tag: " + report.tags.map { "\($0.tag) \($0.correct)/\($0.cases)" }.joined(separator: ", "))
            }
            lines.append("")
            lines.append("rules (cases each fired on, by expected level)")
            let idWidth = (report.rules.map(\.id.count).max() ?? 0) + 2
            for rule in report.rules {
                let counts = report.levels.map { "\($0) \(rule.byExpectedLevel[$0] ?? 0)" }.joined(separator: "  ")
                lines.append("  " + rule.id + String(repeating: " ", count: idWidth - rule.id.count) + counts)
            }
            lines.append("")
            lines.append(report.misses.isEmpty ? "no misses" : "misses (\(report.misses.count))")
            for miss in report.misses {
                let expected = miss.expectedLevel + (miss.expectedRoute.map { "/\($0)" } ?? "")
                let fired = miss.rules.isEmpty ? "no rules" : miss.rules.joined(separator: ", ")
                var why = "score \(miss.score.compactText): \(fired)"
                if let decidedBy = miss.decidedBy {
                    why += "; rules \(miss.rulesLevel ?? "?"), semantic \(miss.semanticLevel ?? "-")"
                        + (miss.semanticProbability.map { " \($0.compactText)" } ?? "") + ", decided by \(decidedBy)"
                    if let nearest = miss.nearest { why += "; nearest \(nearest)" }
                }
                lines.append("  \(cases):\(miss.line):\(miss.column): expected \(expected), got \(miss.level)/\(miss.route) "
                             + "(\(why)) \"\(miss.text)\"")
            }
            return lines.joined(separator: "\n")
        }

        /// Tunes on the tune split and shows what changed, with the accuracy of each split before and after.
        static func suggestion(rules: RuleSet, rulesPath: String, set: EvaluationSet) throws -> String {
            let tune = set.cases(in: "tune")
            let result = RuleTuner.suggest(rules, cases: tune)
            guard !result.changes.isEmpty else {
                return "suggest: no single change to a weight or threshold improves the fit on the tune split "
                    + "(\(result.correctBefore)/\(result.cases))."
            }
            let yaml = try String(contentsOfFile: rulesPath, encoding: .utf8)
            var lines = ["suggest: \(result.changes.count) change\(result.changes.count == 1 ? "" : "s"), tuned on the tune split "
                         + "(\(result.correctBefore)/\(result.cases) → \(result.correctAfter)/\(result.cases)); every example still passes"]
            lines += result.editedLines(of: yaml, path: rulesPath)
            // What the changes do on each split: the holdout says whether they generalise.
            for split in EvaluationSet.splits where !set.cases(in: split).isEmpty {
                let before = RoutingEvaluation.run(rules, on: set.cases(in: split), split: split)
                let after = RoutingEvaluation.run(result.tuned, on: set.cases(in: split), split: split)
                lines.append("\(split): accuracy \(percent(before.accuracy)) → \(percent(after.accuracy))")
            }
            return lines.joined(separator: "\n")
        }
    }
}
