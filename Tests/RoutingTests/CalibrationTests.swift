import Routing
import Testing

private let calibrationYAML = """
    version: 1
    levels:
      - { name: simple, max_score: 1, route: fast, estimated_seconds: 3 }
      - name: complex
        route: slow
        estimated_seconds: 20
    routes:
      fast: { action: stream }
      slow: { action: stream }
      help: { action: advise, message: "Use the desktop client." }
    rules:
      - { id: r, weight: 2, when: { any_keywords: [x] } }
    """

@Suite("Calibration")
struct CalibrationTests {
    @Test("per level: count, median and p90 of durations; a suggestion once there are enough streams and the median is 10 % away")
    func levels() throws {
        let rules = try #require(load(calibrationYAML).accepted)
        // simple: 1..10 s (median 5, p90 9); complex: 19..21 s, close to its 20.
        let simple = (1...10).map { StreamSample(level: "simple", route: "fast", durationMs: $0 * 1000, firstTextMs: $0 * 100) }
        let complex = [19_000, 20_000, 21_000].map { StreamSample(level: "complex", route: "slow", durationMs: $0, firstTextMs: nil) }
        let gone = StreamSample(level: "removed", route: "fast", durationMs: 99_000, firstTextMs: 1)
        let calibration = Calibration(rules: rules, samples: simple + complex + [gone], minSamples: 3)
        let simpleRow = try #require(calibration.levels.first)
        #expect(simpleRow.level == "simple" && simpleRow.configuredSeconds == 3)
        #expect(simpleRow.duration?.count == 10)
        #expect(simpleRow.duration?.median == 5)
        #expect(simpleRow.duration?.p90 == 9)
        #expect(simpleRow.suggestedSeconds == 5)
        let complexRow = try #require(calibration.levels.last)
        #expect(complexRow.duration?.median == 20)
        #expect(complexRow.suggestedSeconds == nil, "within 10 % of the configured value")
        // Per route: time to first text (streams without text are not in it); advice routes are not listed.
        #expect(calibration.routes.map(\.route) == ["fast", "slow"])
        #expect(calibration.routes[0].firstText?.count == 11)
        #expect(calibration.routes[0].firstText?.median == 0.5)
        #expect(calibration.routes[1].firstText == nil)
        #expect(calibration.routes[1].duration?.count == 3)
        // Too few streams: no suggestion.
        #expect(Calibration(rules: rules, samples: simple, minSamples: 11).levels[0].suggestedSeconds == nil)
    }

    @Test("suggestions are the file's lines with the value replaced, flow or block style, ready to paste")
    func editedLines() throws {
        let rules = try #require(load(calibrationYAML).accepted)
        let samples = (1...4).map { StreamSample(level: "simple", route: "fast", durationMs: 7_400 + $0, firstTextMs: 300) }
            + (1...4).map { _ in StreamSample(level: "complex", route: "slow", durationMs: 41_600, firstTextMs: 900) }
        let calibration = Calibration(rules: rules, samples: samples, minSamples: 4)
        #expect(calibration.editedLines(of: calibrationYAML, path: "rules.yaml") == [
            """
            rules.yaml:3: level "simple": estimated_seconds 3 → 7.5 (4 streams: median 7.402 s, p90 7.404 s)
                  - { name: simple, max_score: 1, route: fast, estimated_seconds: 7.5 }
            """,
            """
            rules.yaml:6: level "complex": estimated_seconds 20 → 42 (4 streams: median 41.6 s, p90 41.6 s)
                    estimated_seconds: 42
            """,
        ])
        let text = calibration.text(yaml: calibrationYAML, path: "rules.yaml")
        #expect(text.contains("  simple   fast   3 s         4        7.402 s  7.404 s  7.5 s"), "\(text)")
        #expect(text.contains("  fast   4        0.3 s   0.3 s"), "\(text)")
        #expect(text.contains("Suggested (paste into the rules file):"))
    }
}
