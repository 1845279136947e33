import ChatCore
import Routing

extension RulesStore {
    /// Analyses a chat with the rules in service now (a request keeps the rules it started with), counts it,
    /// and gives the analysis with its report; a chat with no user text is a 400 naming `messages`. A chat (not
    /// the `analyze` preflight) is analysed by the shadow rules too, when there are some: their verdict goes with
    /// the chat's stream, to be booked when it ends.
    ///
    /// The analysis is a span of the request's trace (`ChatTracing.analysis`).
    func analyze(_ chat: ChatRequest, defaultModel: String, metrics: ServerMetrics, endpoint: String)
        throws -> (analysis: Analysis, report: AnalysisReport, shadow: ShadowRules.Verdict?)
    {
        try ChatTracing.analysis({ try analyzeNow(chat, defaultModel: defaultModel, metrics: metrics, endpoint: endpoint) },
                                 describe: { ($0.analysis, $0.report.rulesVersion) })
    }

    private func analyzeNow(_ chat: ChatRequest, defaultModel: String, metrics: ServerMetrics, endpoint: String)
        throws -> (analysis: Analysis, report: AnalysisReport, shadow: ShadowRules.Verdict?)
    {
        let active = self.active
        let input = AnalysisInput(messages: chat.messages.map { .init(isUser: $0.role == .user, text: $0.text) })
        let clock = ContinuousClock()
        let started = clock.now
        guard var analysis = active.analyzer.analyze(input) else {
            throw APIError(.badRequest, code: .invalidRequest, message: "no user message has text to analyse", field: "messages")
        }
        if let name = chat.route {
            guard let route = active.rules.routes[name] else {
                throw APIError(.badRequest, code: .invalidRequest,
                               message: "unknown route \"\(name)\"; the routes are \(active.rules.routes.keys.sorted().joined(separator: ", "))",
                               field: "route")
            }
            analysis = analysis.routed(to: route)
        }
        let elapsed = clock.now - started
        metrics.analysis(complexity: analysis.level.name, route: analysis.route.name, endpoint: endpoint, duration: elapsed)
        let report = AnalysisReport(analysis, rulesVersion: active.rules.fingerprint,
                                    micros: Int((elapsed / .microseconds(1)).rounded(.up)), defaultModel: defaultModel)
        let verdict = endpoint == "analyze" ? nil : shadow?.compare(input, live: analysis, forcedRoute: chat.route)
        return (analysis, report, verdict)
    }
}
