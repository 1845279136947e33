import ChatCore
import Routing

extension RoutingDecision {
    /// The decision an analysis report describes.
    init(_ report: AnalysisReport) {
        self.init(complexity: report.complexity, score: report.score, route: report.route, action: report.action,
                  provider: report.provider, model: report.model, message: report.message,
                  matchedRules: report.matchedRules.map(\.id), rulesVersion: report.rulesVersion)
    }
}
