import ArgumentParser
import ChatCore
import Foundation
import Routing
import RulesFiles

struct Rules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check, test and evaluate a rules file.",
        subcommands: [Check.self, Test.self, Eval.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every problem in a rules file, compiler-style; exit 1 on errors.")

        @OptionGroup var file: RulesFileArgument

        func run() async throws {
            let path = file.path
            let outcome = RulesFile.load(.file(path))
            for diagnostic in outcome.diagnostics { print(diagnostic.description) }
            let errors = outcome.diagnostics.filter { $0.severity == .error }.count
            let warnings = outcome.diagnostics.count - errors
            if errors > 0 {
                print("\(path): \(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")
                throw ExitCode(1)
            }
            let rules = outcome.accepted!
            print("\(path): ok, \(rules.rules.count) rules, \(rules.levels.count) levels, \(rules.routes.count) routes, "
                  + "\(rules.examples.count) examples passed" + (warnings > 0 ? ", \(warnings) warning\(warnings == 1 ? "" : "s")" : ""))
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the file's examples and print each pass or failure with its analysis.")

        @OptionGroup var file: RulesFileArgument

        func run() async throws {
            let path = file.path
            let outcome = RulesFile.load(.file(path))
            guard outcome.compiled != nil else {
                for diagnostic in outcome.diagnostics { print(diagnostic.description) }
                throw ExitCode(2)
            }
            for result in outcome.exampleResults {
                let analysis = result.analysis
                let summary = "\(analysis.level.name)/\(analysis.route.name), score \(analysis.score.compactText)"
                    + (analysis.matchedRules.isEmpty ? "" : " from " + analysis.matchedRules.map { "\($0.id) +\($0.weight.compactText)" }.joined(separator: ", "))
                if result.passed {
                    print("PASS \(path):\(result.example.line): \"\(result.example.query)\" → \(summary)")
                } else {
                    print("FAIL \(path):\(result.example.line): \"\(result.example.query)\" → \(summary)")
                    for mismatch in result.mismatches { print("     \(mismatch)") }
                }
            }
            let failed = outcome.exampleResults.filter { !$0.passed }.count
            print("\(outcome.exampleResults.count - failed) passed, \(failed) failed")
            if failed > 0 { throw ExitCode(1) }
        }
    }
}
