import Routing

/// The body of `GET /rules/calibration`: per level the configured `estimated_seconds` beside what completed streams
/// took, per route the time to first text, and the suggested lines of the rules file.
struct CalibrationResponse: Encodable {
    struct Figures: Encodable {
        let count: Int
        let medianSeconds: Double
        let p90Seconds: Double

        init?(_ figures: Calibration.Figures?) {
            guard let figures else { return nil }
            count = figures.count
            medianSeconds = figures.median
            p90Seconds = figures.p90
        }
    }

    struct LevelRow: Encodable {
        let level: String
        let route: String
        let configuredSeconds: Double
        let duration: Figures?
        let suggestedSeconds: Double?
    }

    struct RouteRow: Encodable {
        let route: String
        let firstText: Figures?
        let duration: Figures?
    }

    let rulesVersion: String
    /// The most recent streams looked at.
    let window: Int
    let minSamples: Int
    let levels: [LevelRow]
    let routes: [RouteRow]
    /// `path:line: what` and the edited line, for each suggested change.
    let suggestions: [String]

    init(_ calibration: Calibration, rulesVersion: String, window: Int, suggestions: [String]) {
        self.rulesVersion = rulesVersion
        self.window = window
        minSamples = calibration.minSamples
        levels = calibration.levels.map {
            LevelRow(level: $0.level, route: $0.route, configuredSeconds: $0.configuredSeconds, duration: Figures($0.duration),
                     suggestedSeconds: $0.suggestedSeconds)
        }
        routes = calibration.routes.map { RouteRow(route: $0.route, firstText: Figures($0.firstText), duration: Figures($0.duration)) }
        self.suggestions = suggestions
    }
}
