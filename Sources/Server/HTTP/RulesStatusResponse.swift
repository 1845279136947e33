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
    @ExplicitNull var lastReloadError: ReloadErrorReport?
    /// The semantic stage: `on` (its model, the examples it learned, how long that took), `off` (why: the rules
    /// decide alone) or `not_configured`.
    let semantic: SemanticStatusReport

    struct SemanticStatusReport: Encodable {
        let status: String
        @ExplicitNull var model: String?
        @ExplicitNull var examples: Int?
        @ExplicitNull var trainingMilliseconds: Double?
        @ExplicitNull var reason: String?
        @ExplicitNull var minConfidence: Double?
        @ExplicitNull var rulesWeight: Double?
        @ExplicitNull var matchSimilarity: Double?

        init(_ rules: RuleSet) {
            let settings = rules.semanticSettings
            minConfidence = settings?.minConfidence
            rulesWeight = settings?.rulesWeight
            matchSimilarity = settings?.matchSimilarity
            switch rules.semanticStatus {
            case .notConfigured:
                status = "not_configured"
            case .on(let model, let examples, let milliseconds):
                status = "on"
                self.model = model
                self.examples = examples
                trainingMilliseconds = (milliseconds * 10).rounded() / 10
            case .off(let reason):
                status = "off"
                self.reason = reason
            }
        }
    }

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
        lastReloadError = store.lastRejection.map(ReloadErrorReport.init)
        semantic = SemanticStatusReport(rules)
    }
}

/// A reload that was refused (in `GET /rules` and `GET /rules/shadow`): when, the file's version, and why.
struct ReloadErrorReport: Encodable {
    let at: String
    let version: String?
    let diagnostics: [String]

    init(_ rejection: RulesStore.Rejection) {
        at = Timestamp.iso8601(rejection.at)
        version = rejection.fingerprint
        diagnostics = rejection.diagnostics.map(\.description)
    }
}
