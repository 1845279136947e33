import ArgumentParser
import ChatCore
import Foundation
import Routing
import ConfigFiles
import Storage
import Tools

struct Rules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check, test and evaluate a rules file.",
        subcommands: [Check.self, Test.self, Eval.self, Calibrate.self, ReviewCommand.self]
    )

    struct Calibrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare each level's estimated_seconds with how long the server's streams took, and suggest new values.",
            discussion: """
                Reads the finished streams the server keeps in its database (the last \(10_000) by default) and prints, per \
                level, the configured estimated_seconds beside the count, median and 90th percentile of the streams that \
                completed on it; per route, the time to the first text. A level with --min-samples streams or more whose \
                median is 10 % or more away from its value gets a suggested line to paste.
                """)

        @OptionGroup var file: RulesFileArgument
        @OptionGroup var storage: DatabaseOption
        @Option(help: "How many of the most recent streams to look at.")
        var window = 10_000
        @Option(name: .customLong("min-samples"), help: "The fewest completed streams a level needs for a suggestion.")
        var minSamples = 10

        func validate() throws {
            guard window >= 1 else { throw ValidationError("--window must be at least 1") }
            guard minSamples >= 1 else { throw ValidationError("--min-samples must be at least 1") }
        }

        func run() async throws {
            let outcome = file.load(), path = file.path
            guard let rules = outcome.accepted else {
                for diagnostic in outcome.diagnostics { printError(diagnostic.description) }
                throw ExitCode(2)
            }
            let yaml = RulesFile.text(.file(path))
            let window = window
            let samples = try await storage.withDatabase(logger: standardErrorLogger(label: "switchboard.calibrate")) { database in
                try await StreamRecords(database: database).samples(window: window)
            }
            let calibration = Calibration(rules: rules, samples: samples.map {
                StreamSample(level: $0.level, route: $0.route, durationMs: $0.durationMs, firstTextMs: $0.firstTextMs)
            }, minSamples: minSamples)
            print(calibration.text(yaml: yaml, path: path))
        }
    }

    struct ReviewCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "review",
            abstract: "List the chats of the server's traffic that look misrouted, and export them as evaluation cases.",
            discussion: """
                Reads the finished streams the server keeps in its database and flags those whose outcome says their level \
                was wrong: the iteration limit reached with the model still asking for tools, far more tool calls or time \
                than the level's usual, one short model call on a level above the lowest, or feedback down naming another \
                level. --export writes the flagged chats that kept their text (serve --record-queries) as cases for \
                `rules eval --cases FILE`, tagged with their signals and needs-review where the level is a guess.
                """)

        @OptionGroup var file: RulesFileArgument
        @OptionGroup var storage: DatabaseOption
        @Option(help: "How far back to look: 90s, 30m, 24h, 7d.")
        var since = "24h"
        @Option(help: "The most streams to look at, newest first.")
        var limit = 10_000
        @Option(help: "Write the flagged chats with text as evaluation cases to this file.")
        var export: String?

        func validate() throws {
            guard Review.windowMilliseconds(since) != nil else { throw ValidationError("--since must be a duration such as 90s, 30m, 24h or 7d") }
            guard limit >= 1 else { throw ValidationError("--limit must be at least 1") }
        }

        func run() async throws {
            let outcome = file.load()
            guard let rules = outcome.accepted else {
                for diagnostic in outcome.diagnostics { printError(diagnostic.description) }
                throw ExitCode(2)
            }
            let since = Int64((Date().timeIntervalSince1970 * 1000).rounded()) - (Review.windowMilliseconds(since) ?? 0)
            let limit = limit
            let streams = try await storage.withDatabase(logger: standardErrorLogger(label: "switchboard.review")) { database in
                try await StreamRecords(database: database).reviewed(since: since, limit: limit)
            }
            let flagged = Review.flag(streams, rules: rules)
            print("\(flagged.count) of \(streams.count) chats since \(self.since) look misrouted")
            for chat in flagged {
                let stream = chat.stream
                let cost = stream.costUSD.map { String(format: " $%.4f", $0) } ?? ""
                print("  \(stream.sessionId)  \(chat.level) → \(chat.suggestedLevel)\(chat.guessed ? "?" : "")  "
                      + "[\(chat.signals.map(\.rawValue).joined(separator: ", "))]  \(stream.iterations) iterations, \(stream.toolCalls) tool calls, "
                      + "\(stream.durationMs) ms\(cost); rules: \(stream.matchedRules.isEmpty ? "none" : stream.matchedRules.joined(separator: ", "))")
                if let text = stream.queryText { print("      \"\(text.prefixUTF8(200))\"") }
            }
            if let export {
                let cases = Review.evaluationCases(flagged)
                try Data(cases.yaml.utf8).write(to: URL(fileURLWithPath: export))
                print("wrote \(cases.written) cases to \(export)" + (cases.skipped > 0
                      ? " (\(cases.skipped) flagged chats had no recorded text: serve with --record-queries to keep it)" : ""))
            }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every problem in a rules file, compiler-style; exit 1 on errors.")

        @OptionGroup var file: RulesFileArgument

        func run() async throws {
            let outcome = file.load(), path = file.path
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
            let outcome = file.load(), path = file.path
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
