import Foundation

/// One finished stream as calibration reads it back: the level and route it was analysed into, how long it took
/// and when its first text arrived.
public struct StreamSample: Sendable, Hashable {
    public var level: String
    public var route: String
    public var durationMs: Int
    /// `nil`: the stream sent no text.
    public var firstTextMs: Int?

    public init(level: String, route: String, durationMs: Int, firstTextMs: Int?) {
        self.level = level
        self.route = route
        self.durationMs = durationMs
        self.firstTextMs = firstTextMs
    }
}

/// The rules' `estimated_seconds` beside what streams took: per level the configured value, the observed count,
/// median and 90th percentile of the streams' durations, and a suggested value once there are enough of them;
/// per route the same figures for the time to the first text.
public struct Calibration: Sendable, Hashable {
    /// Observed figures, in seconds (nearest-rank percentiles).
    public struct Figures: Sendable, Hashable {
        public let count: Int
        public let median: Double
        public let p90: Double

        init?(milliseconds values: [Int]) {
            guard !values.isEmpty else { return nil }
            let sorted = values.sorted()
            func rank(_ fraction: Double) -> Double {
                let index = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
                return Double(sorted[min(max(index, 0), sorted.count - 1)]) / 1000
            }
            count = sorted.count
            median = rank(0.5)
            p90 = rank(0.9)
        }
    }

    public struct LevelRow: Sendable, Hashable {
        public let level: String
        public let route: String
        public let configuredSeconds: Double
        /// `nil`: no stream finished on this level yet.
        public let duration: Figures?
        /// A new `estimated_seconds` (the median, rounded), when there are enough streams and it differs by 10 % or more.
        public let suggestedSeconds: Double?
        let location: SourceLocation?
    }

    public struct RouteRow: Sendable, Hashable {
        public let route: String
        public let firstText: Figures?
        public let duration: Figures?
    }

    public let levels: [LevelRow]
    public let routes: [RouteRow]
    /// The fewest streams a level needs before a value is suggested.
    public let minSamples: Int

    public init(rules: RuleSet, samples: [StreamSample], minSamples: Int = 10) {
        self.minSamples = minSamples
        var byLevel: [String: [Int]] = [:]
        var durationsByRoute: [String: [Int]] = [:]
        var firstTextByRoute: [String: [Int]] = [:]
        for sample in samples {
            byLevel[sample.level, default: []].append(sample.durationMs)
            durationsByRoute[sample.route, default: []].append(sample.durationMs)
            if let first = sample.firstTextMs { firstTextByRoute[sample.route, default: []].append(first) }
        }
        levels = rules.levels.map { level in
            let figures = Figures(milliseconds: byLevel[level.name] ?? [])
            var suggested: Double?
            if let figures, figures.count >= minSamples {
                let value = Self.rounded(figures.median)
                if abs(value - level.estimatedSeconds) >= max(0.1 * level.estimatedSeconds, 0.5) { suggested = value }
            }
            return LevelRow(level: level.name, route: level.route, configuredSeconds: level.estimatedSeconds, duration: figures,
                            suggestedSeconds: suggested, location: level.estimatedSecondsLocation)
        }
        routes = rules.routes.values.filter { $0.action == .stream }.map(\.name).sorted().map { route in
            RouteRow(route: route, firstText: Figures(milliseconds: firstTextByRoute[route] ?? []),
                     duration: Figures(milliseconds: durationsByRoute[route] ?? []))
        }
    }

    /// Seconds as an estimate is written: halves under 10 s, whole seconds above.
    static func rounded(_ seconds: Double) -> Double {
        seconds < 10 ? (seconds * 2).rounded() / 2 : seconds.rounded()
    }

    /// The suggestions as lines of the rules file, each after its `path:line:` and what changes, ready to paste.
    public func editedLines(of yaml: String, path: String) -> [String] {
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        return levels.compactMap { row in
            guard let new = row.suggestedSeconds, let figures = row.duration else { return nil }
            let what = "level \"\(row.level)\": estimated_seconds \(row.configuredSeconds.compactText) → \(new.compactText) "
                + "(\(figures.count) streams: median \(figures.median.compactText) s, p90 \(figures.p90.compactText) s)"
            guard let location = row.location, location.line >= 1, location.line <= lines.count else {
                return "\(path): \(what) (add \"estimated_seconds: \(new.compactText)\" to the level)"
            }
            return "\(path):\(location.line): \(what)\n    "
                + RuleTuner.Result.replacingNumber(in: lines[location.line - 1], at: location.column, with: new)
        }
    }
}

extension Calibration {
    /// The report as text, for `switchboard rules calibrate`: the levels, the routes' time to first text, then the
    /// suggested lines.
    public func text(yaml: String, path: String) -> String {
        func seconds(_ value: Double?) -> String { value.map { "\($0.compactText) s" } ?? "-" }
        func table(_ rows: [[String]]) -> [String] {
            let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
            return rows.map { row in
                zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                    .trimmingTrailingSpaces()
            }
        }
        var lines = ["Stream duration by level (streams that completed):"]
        lines += table([["level", "route", "configured", "streams", "median", "p90", "suggested"]] + levels.map { row in
            [row.level, row.route, seconds(row.configuredSeconds), "\(row.duration?.count ?? 0)", seconds(row.duration?.median),
             seconds(row.duration?.p90), row.suggestedSeconds.map { "\($0.compactText) s" } ?? "-"]
        }).map { "  " + $0 }
        lines.append("")
        lines.append("Time to first text by route:")
        lines += table([["route", "streams", "median", "p90"]] + routes.map { row in
            [row.route, "\(row.firstText?.count ?? 0)", seconds(row.firstText?.median), seconds(row.firstText?.p90)]
        }).map { "  " + $0 }
        lines.append("")
        let edits = editedLines(of: yaml, path: path)
        if edits.isEmpty {
            lines.append("No change to suggest: each level needs \(minSamples) completed streams, and a median 10 % or more "
                         + "away from its estimated_seconds.")
        } else {
            lines.append("Suggested (paste into the rules file):")
            lines += edits
        }
        return lines.joined(separator: "\n")
    }
}

private extension String {
    func trimmingTrailingSpaces() -> String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}
