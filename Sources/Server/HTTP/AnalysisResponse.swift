import ChatCore
import Foundation
import Routing

/// The body of `POST /mcp/chat/analyze`: routing advice and its reasons.
struct AnalysisResponse: Encodable {
    struct Matched: Encodable {
        let id: String
        let description: String?
        let weight: Double
        let route: String?
        let matches: [Span]
    }

    struct Span: Encodable {
        let text: String
        let start: Int
        let end: Int
        let messageIndex: Int
    }

    let complexity: String
    let score: Double
    let route: String
    let action: String
    let model: String?
    let maxIterations: Int?
    let estimatedSeconds: Double
    let message: String?
    let routeForcedBy: String?
    let matchedRules: [Matched]
    let rulesVersion: String
    let analysisMicros: Int

    init(_ analysis: Analysis, rulesVersion: String, micros: Int, defaultModel: String) {
        complexity = analysis.level.name
        score = analysis.score
        route = analysis.route.name
        action = analysis.route.action.rawValue
        switch analysis.route.action {
        case .stream:
            model = analysis.route.model ?? defaultModel
            maxIterations = analysis.route.maxIterations
        case .advise:
            model = nil
            maxIterations = nil
        }
        estimatedSeconds = analysis.level.estimatedSeconds
        message = analysis.route.message
        routeForcedBy = analysis.routeForcedBy
        matchedRules = analysis.matchedRules.map { rule in
            Matched(id: rule.id, description: rule.description, weight: rule.weight, route: rule.route,
                    matches: rule.matches.map { Span(text: $0.text, start: $0.start, end: $0.end, messageIndex: $0.messageIndex) })
        }
        self.rulesVersion = rulesVersion
        analysisMicros = micros
    }

    // Written by hand so absent values are an explicit null, which frontends can rely on.
    enum CodingKeys: String, CodingKey {
        case complexity, score, route, action, model, maxIterations, estimatedSeconds, message, routeForcedBy
        case matchedRules, rulesVersion, analysisMicros
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(complexity, forKey: .complexity)
        try container.encode(score, forKey: .score)
        try container.encode(route, forKey: .route)
        try container.encode(action, forKey: .action)
        try container.encode(model, forKey: .model)
        try container.encode(maxIterations, forKey: .maxIterations)
        try container.encode(estimatedSeconds, forKey: .estimatedSeconds)
        try container.encode(message, forKey: .message)
        try container.encode(routeForcedBy, forKey: .routeForcedBy)
        try container.encode(matchedRules, forKey: .matchedRules)
        try container.encode(rulesVersion, forKey: .rulesVersion)
        try container.encode(analysisMicros, forKey: .analysisMicros)
    }
}

/// The body of `GET /rules`: what is in service and whether the last reload failed.
struct RulesStatusResponse: Encodable {
    struct LevelSummary: Encodable {
        let name: String
        let maxScore: Double?
        let route: String
        let estimatedSeconds: Double
    }

    struct ReloadError: Encodable {
        let at: String
        let version: String?
        let diagnostics: [String]
    }

    let version: String
    let path: String
    let source: String
    let loadedAt: String
    let levelCount: Int
    let ruleCount: Int
    let routeCount: Int
    let exampleCount: Int
    let levels: [LevelSummary]
    let routes: [String]
    let warnings: [String]
    let reloads: Int
    let lastReloadError: ReloadError?

    init(_ store: RulesStore) {
        let active = store.active
        let rules = active.rules
        version = rules.fingerprint
        path = active.source.path
        source = active.source == .embedded ? "embedded" : "file"
        loadedAt = Timestamp.iso8601(active.loadedAt)
        levelCount = rules.levels.count
        ruleCount = rules.rules.count
        routeCount = rules.routes.count
        exampleCount = rules.examples.count
        levels = rules.levels.map { LevelSummary(name: $0.name, maxScore: $0.maxScore, route: $0.route, estimatedSeconds: $0.estimatedSeconds) }
        routes = rules.routes.keys.sorted()
        warnings = active.warnings.map(\.description)
        reloads = store.reloads
        lastReloadError = store.lastRejection.map {
            ReloadError(at: Timestamp.iso8601($0.at), version: $0.fingerprint, diagnostics: $0.diagnostics.map(\.description))
        }
    }

    enum CodingKeys: String, CodingKey {
        case version, path, source, loadedAt, levelCount, ruleCount, routeCount, exampleCount, levels, routes, warnings
        case reloads, lastReloadError
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(version, forKey: .version)
        try container.encode(path, forKey: .path)
        try container.encode(source, forKey: .source)
        try container.encode(loadedAt, forKey: .loadedAt)
        try container.encode(levelCount, forKey: .levelCount)
        try container.encode(ruleCount, forKey: .ruleCount)
        try container.encode(routeCount, forKey: .routeCount)
        try container.encode(exampleCount, forKey: .exampleCount)
        try container.encode(levels, forKey: .levels)
        try container.encode(routes, forKey: .routes)
        try container.encode(warnings, forKey: .warnings)
        try container.encode(reloads, forKey: .reloads)
        try container.encode(lastReloadError, forKey: .lastReloadError)
    }
}

/// The analyze answer's JSON, for the CLI's `analyze --json` to print exactly what the API returns.
public func analysisJSON(_ analysis: Analysis, rulesVersion: String, micros: Int,
                         defaultModel: String = ServerConfiguration().defaultModel) throws -> Data {
    try JSONEncoder.api.encode(AnalysisResponse(analysis, rulesVersion: rulesVersion, micros: micros, defaultModel: defaultModel))
}
