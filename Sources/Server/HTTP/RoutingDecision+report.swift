import ChatCore
import Routing

extension RoutingDecision {
    /// The decision an analysis report describes.
    init(_ report: AnalysisReport) {
        self.init(complexity: report.complexity, score: report.score, route: report.route, action: report.action,
                  provider: report.provider, model: report.model, message: report.message,
                  matchedRules: report.matchedRules.map(\.id), rulesVersion: report.rulesVersion)
        semantic = report.semantic.map { part in
            SemanticPart(decidedBy: part.decidedBy, rulesLevel: part.rulesLevel,
                         probabilities: part.probabilities.keys.sorted().map { .init(level: $0, probability: part.probabilities[$0]!) },
                         nearest: part.nearest.map { .init(text: $0.text, level: $0.level, similarity: $0.similarity) })
        }
    }
}
