import ArgumentParser
import ChatCore
import ConfigFiles
import Foundation
import Routing
import Server

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the analyzer (run with -c release; see Docs/BENCHMARKS.md).",
        shouldDisplay: false
    )

    @OptionGroup var rules: RulesOption

    @Option(help: "Replace the rules with this many generated ones (0 keeps the file's rules).")
    var generated = 0

    @Option(help: "With --generated: one rule in this many is a regex (0 for none).")
    var regexEvery = 10

    @Option(help: "Analyses to time.")
    var iterations = 20_000

    @Option(help: "Also analyse with this candidate rules file, as serve --shadow-rules does on every chat.")
    var shadow: String?

    @Option(help: "The query to analyse.")
    var query = "chart salary trends by department and compare the median increment with last year for Berlin and São Paulo"

    func run() async throws {
        let ruleSet: RuleSet
        if generated > 0 {
            let yaml = Self.generatedRules(count: generated, regexEvery: regexEvery)
            let outcome = RuleSetLoader.load(yaml: yaml, path: "<generated>", fingerprint: "generated")
            guard let accepted = outcome.accepted else {
                outcome.diagnostics.prefix(5).forEach { printError($0.description) }
                throw ExitCode(2)
            }
            ruleSet = accepted
        } else {
            ruleSet = try rules.load()
        }
        let analyzer = QueryAnalyzer(rules: ruleSet)
        let input = AnalysisInput(query: query)
        var candidate: ShadowRules?
        if let shadow {
            let outcome = RulesFile.load(.file(shadow))
            guard let accepted = outcome.accepted else {
                outcome.diagnostics.prefix(5).forEach { printError($0.description) }
                throw ExitCode(2)
            }
            candidate = ShadowRules(rules: accepted, path: shadow)
        }
        for _ in 0..<min(1_000, iterations) {
            if let analysis = analyzer.analyze(input) { _ = candidate?.compare(input, live: analysis) }
        }

        let clock = ContinuousClock()
        var samples: [Double] = []
        samples.reserveCapacity(iterations)
        var matched = 0
        for _ in 0..<iterations {
            let start = clock.now
            let analysis = analyzer.analyze(input)
            if let analysis, let candidate { _ = candidate.compare(input, live: analysis) }
            let elapsed = clock.now - start
            matched = analysis?.matchedRules.count ?? 0
            samples.append(Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6)
        }
        samples.sort()
        func percentile(_ p: Double) -> String {
            String(format: "%.2f", samples[min(samples.count - 1, Int(Double(samples.count) * p))])
        }
        let mean = samples.reduce(0, +) / Double(samples.count)
        print("rules: \(ruleSet.rules.count) (\(generated > 0 ? "generated" : ruleSet.path))\(shadow.map { ", shadow: \($0)" } ?? ""), query: \(query.count) chars, matched rules: \(matched)")
        switch ruleSet.semanticStatus {
        case .on(let model, let examples, let milliseconds):
            print("semantic stage: on (\(model), \(examples) examples, trained in \(String(format: "%.1f", milliseconds)) ms)")
        case .off(let reason): print("semantic stage: off (\(reason))")
        case .notConfigured: print("semantic stage: not configured")
        }
        print("analyses: \(iterations); µs per analysis: median \(percentile(0.5)), p90 \(percentile(0.9)), p99 \(percentile(0.99)), mean \(String(format: "%.2f", mean))")
    }

    /// A deterministic rules file of `count` rules shaped like real ones: mostly keyword lists and phrases,
    /// every tenth a regex, every seventh a combination.
    static func generatedRules(count: Int, regexEvery: Int) -> String {
        var rng = SplitMix64(seed: 42)
        let syllables = ["sal", "ar", "emp", "lo", "yee", "dep", "art", "ment", "chart", "gra", "ph", "tren", "d", "bud",
                         "get", "hire", "lon", "don", "ber", "lin", "rev", "iew", "pro", "mo", "tion", "ex", "port"]
        func word() -> String {
            (0..<Int.random(in: 2...3, using: &rng)).map { _ in syllables.randomElement(using: &rng)! }.joined()
        }
        var lines = ["version: 1",
                     "levels:",
                     "  - { name: simple, max_score: 20, route: fast, estimated_seconds: 3 }",
                     "  - { name: complex, route: deep, estimated_seconds: 25 }",
                     "routes:",
                     "  fast: { action: stream, model: m }",
                     "  deep: { action: advise, message: desktop }",
                     "rules:"]
        for index in 0..<count {
            let condition: String
            if regexEvery > 0, index % regexEvery == regexEvery - 1 {
                condition = "{ regex: '\\b(\(word())|\(word()))s?\\b' }"
            } else if index % 7 == 6 {
                condition = "{ all: [ { any_keywords: [\(word()), \(word())] }, { not: { any_keywords: [\(word())] } } ] }"
            } else {
                let keywords = (0..<Int.random(in: 3...8, using: &rng)).map { _ in
                    Bool.random(using: &rng) ? word() : "\(word()) \(word())"
                }
                condition = "{ any_keywords: [\(keywords.joined(separator: ", "))] }"
            }
            lines.append("  - { id: r\(index), weight: 1, when: \(condition) }")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

