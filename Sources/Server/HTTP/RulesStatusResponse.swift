import ChatCore
import Foundation
import Routing
import ConfigFiles

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
    @ExplicitNull var lastReloadError: ReloadError?

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

}
