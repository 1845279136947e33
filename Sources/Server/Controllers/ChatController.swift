import ChatCore
import Foundation
import ChatPipeline
import HTTPTypes
import Hummingbird
import Logging
import Routing
import Storage
import Upstream

/// The chat endpoints, for any key: the stream, smart routing, the analyze preflight, and a resumable stream's
/// resume and cancel. Each chat is checked in one order (caps → the route and the model it will really run on →
/// tokens → admission) before a byte goes upstream.
struct ChatController<Model: LanguageModel>: Sendable {
    let rules: RulesStore
    let configuration: ServerConfiguration
    let model: Model?
    let tools: ToolBox
    let providers: ProviderModels
    let metrics: ServerMetrics
    let gate: StreamGate
    let sessions: ResumableSessions
    let recorder: StreamRecorder?

    typealias Context = SwitchboardRequestContext

    /// What every stream of this server shares.
    var streams: StreamSettings {
        StreamSettings(keepalive: configuration.keepaliveInterval, shutdownGrace: configuration.shutdownGrace, metrics: metrics,
                       recorder: recorder, sessions: sessions, instance: configuration.instanceID, shadow: rules.shadow)
    }

    func addRoutes(to group: RouterGroup<Context>) {
        group.post("/mcp/chat/stream", use: stream)
        group.get("/mcp/chat/stream/{sessionId}", use: resume)
        group.delete("/mcp/chat/stream/{sessionId}", use: cancel)
        group.post("/mcp/chat/analyze", use: analyze)
        group.post("/mcp/chat", use: route)
        group.post("/mcp/chat/feedback", use: feedback)
    }

    /// `POST /mcp/chat/stream`: the chat on the server's own model.
    @Sendable func stream(_ request: Request, context: Context) async throws -> Response {
        var request = request
        guard let model else { throw APIError.streamingNotConfigured }
        let key = context.apiKey
        if let routes = key?.routes {
            throw APIError(.forbidden, code: .forbidden, message: "this key may only chat through smart routing (POST /mcp/chat), "
                           + "on the routes \(routes.sorted().joined(separator: ", "))")
        }
        let chat = try await request.decodeChatRequest(limit: configuration.maxBodyBytes)
        let (plan, loop) = try await direct(chat, key: key, client: model, provider: Provider.builtIn, endpoint: "stream")
        return ChatStream.response(plan, loop: loop, channel: context.channel, logger: context.logger, settings: streams)
    }

    /// A chat on one model, checked and admitted: caps, the model (the chat's, else the server's default) against
    /// the key's and the server's lists, tokens, admission; `client` metered as `provider`. The chat is analysed
    /// too (counted under `endpoint`), for its record: a review compares the level with how the chat went.
    func direct<Client: LanguageModel>(_ chat: ChatRequest, key: APIKey?, client: Client, provider: String, endpoint: String) async throws
        -> (StreamPlan, AgentLoop<MeteredModel<Client>>)
    {
        // A chat with no user text to analyse still streams; it is recorded without an analysis.
        let analyzed = try? rules.analyze(chat, defaultModel: configuration.loop.model, metrics: metrics, endpoint: endpoint)
        let active = rules.active.rules
        let chat = try gate.capped(chat, key: key, defaultMaxTokens: configuration.loop.maxTokens)
        try gate.checkModel(of: chat, key: key, rules: active, defaultModel: configuration.loop.model)
        let ticket = try await gate.admit(key)
        var loopConfiguration = configuration.loop
        loopConfiguration.maxTokens = gate.maxTokens(loopConfiguration.maxTokens, key: key)
        let metered = MeteredModel(base: client, provider: provider, prices: active.providers[provider]?.prices ?? [:],
                                   route: "none", metrics: metrics, ticket: ticket)
        let loop = AgentLoop(model: metered, tools: tools.only(key?.tools), configuration: loopConfiguration)
        var labels = StreamLabels(level: nil, route: nil, provider: provider, model: chat.model ?? loopConfiguration.model)
        recordReview(of: chat, advice: analyzed?.report, key: key, in: &labels)
        labels.shadow = analyzed?.shadow
        return (StreamPlan(chat: chat, ticket: ticket, labels: labels, owner: key?.id), loop)
    }

    /// `GET /mcp/chat/stream/{sessionId}`: a resumable stream picked up again, the events after Last-Event-ID,
    /// then live ones. Only its key may.
    @Sendable func resume(_ request: Request, context: Context) async throws -> Response {
        let session = try ownSession(context)
        let text = request.headers[HTTPField.Name("Last-Event-ID")!] ?? request.uri.queryParameters["lastEventId"].map(String.init)
        var lastId = 0
        if let text {
            guard let number = Int(text.trimmingCharacters(in: .whitespaces)), number >= 0 else {
                throw APIError(.badRequest, code: .invalidRequest, message: "Last-Event-ID must be an event id (a whole number)",
                               field: "Last-Event-ID")
            }
            lastId = number
        }
        return ChatStream.resume(session, after: lastId, channel: context.channel, keepalive: configuration.keepaliveInterval,
                                 shutdownGrace: configuration.shutdownGrace)
    }

    /// `DELETE /mcp/chat/stream/{sessionId}`: a resumable stream stopped by its client (a closed connection alone
    /// does not stop it): model call and tools.
    @Sendable func cancel(_ request: Request, context: Context) async throws -> Response {
        try ownSession(context).end.fire(.hungUp)
        return Response(status: .noContent)
    }

    private func ownSession(_ context: Context) throws -> ResumableSession {
        let id = context.parameters.get("sessionId") ?? ""
        guard let session = sessions.session(id), session.owner == context.apiKey?.id else {
            throw APIError(.notFound, code: .sessionNotFound, message: "no resumable stream \(id) is kept for this key "
                           + "(it was not opened with \"resumable\": true, or its grace period ran out)", field: "sessionId")
        }
        return session
    }

    /// Says on a feedback's answer that its comment was not kept (the server does not record users' words).
    static var commentKeptField: HTTPField.Name { HTTPField.Name("X-Switchboard-Comment-Kept")! }

    /// `POST /mcp/chat/feedback`: a client's verdict on one of its finished streams, for the review (`204`).
    @Sendable func feedback(_ request: Request, context: Context) async throws -> Response {
        guard let recorder else {
            throw APIError(.serviceUnavailable, code: .notConfigured, message: "this server keeps no stream records")
        }
        var request = request
        let body = try await request.collectChatBody(upTo: 16 << 10)
        let given = try FeedbackRequest(json: body.readableBytesView, levels: rules.active.rules.levels.map(\.name))
        // A stream that ended a moment ago may still wait in the recorder's buffer.
        await recorder.flush()
        let kept = try await recorder.records.owner(of: given.sessionId)
        // Someone else's stream is answered as no stream at all.
        guard kept.kept, context.apiKey == nil || kept.owner == context.apiKey?.id else {
            throw APIError(.notFound, code: .sessionNotFound, message: "no finished stream \(given.sessionId) is kept for this key",
                           field: "sessionId")
        }
        // A comment is the user's own words, kept like their queries only with --record-queries.
        var feedback = given.feedback
        let commentDropped = feedback.comment != nil && !configuration.recordQueries
        if commentDropped { feedback.comment = nil }
        try await recorder.records.saveFeedback(feedback, sessionId: given.sessionId,
                                                at: Int64((Date().timeIntervalSince1970 * 1000).rounded()))
        var headers = HTTPFields()
        if commentDropped { headers[Self.commentKeptField] = "false" }
        return Response(status: .noContent, headers: headers)
    }

    /// `POST /mcp/chat/analyze`: routing advice.
    @Sendable func analyze(_ request: Request, context: Context) async throws -> Response {
        var request = request
        let chat = try await request.decodeChatRequest(limit: configuration.maxBodyBytes)
        let (_, report, _) = try rules.analyze(chat, defaultModel: configuration.loop.model, metrics: metrics, endpoint: "analyze")
        return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: report.jsonBytes)))
    }

    /// `POST /mcp/chat`: analyse, then advise (JSON, or SSE for a frontend that asks for it) or stream on the
    /// route's provider and model, with its fallbacks and iteration limit.
    @Sendable func route(_ request: Request, context: Context) async throws -> Response {
        var request = request
        let chat = try await request.decodeChatRequest(limit: configuration.maxBodyBytes)
        let (analysis, advice, verdict) = try rules.analyze(chat, defaultModel: configuration.loop.model, metrics: metrics, endpoint: "chat")
        var headers = Self.routingHeaders(advice)
        guard analysis.route.action == .stream else {
            if request.headers[.accept]?.contains("text/event-stream") == true {
                return ChatStream.advice(RoutingDecision(advice), extraHeaders: headers, instance: configuration.instanceID)
            }
            var response = try Response.json(advice)
            response.headers.append(contentsOf: headers)
            return response
        }
        let (plan, loop) = try await routed(chat, analysis: analysis, advice: advice, shadow: verdict, key: context.apiKey, headers: &headers)
        return ChatStream.response(plan, loop: loop, channel: context.channel, logger: context.logger, settings: streams)
    }

    /// What a stream's record keeps for a review: the analysis, the key, and the last user text with
    /// `--record-queries` (bounded).
    private func recordReview(of chat: ChatRequest, advice: AnalysisReport?, key: APIKey?, in labels: inout StreamLabels) {
        labels.analysis = advice.map { RecordedAnalysis(level: $0.complexity, score: $0.score, matchedRules: $0.matchedRules.map(\.id)) }
        labels.owner = key?.id
        if configuration.recordQueries, let last = chat.messages.last(where: { $0.role == .user }) {
            labels.queryText = last.text.prefixUTF8(ServerConfiguration.recordedTextLimit)
        }
    }

    /// The `X-Switchboard-*` headers of a routing decision: level, route, action and rules version (the provider and
    /// model are added once the plan knows them).
    static func routingHeaders(_ advice: AnalysisReport) -> HTTPFields {
        var headers = HTTPFields()
        headers[.switchboardComplexity] = advice.complexity
        headers[.switchboardRoute] = advice.route
        headers[.switchboardAction] = advice.action.rawValue
        headers[.switchboardRulesVersion] = advice.rulesVersion
        return headers
    }

    /// A smart-routed chat on its route's provider and model (with the fallbacks the key may use), checked and
    /// admitted; `headers` gain the provider and model.
    func routed(_ chat: ChatRequest, analysis: Analysis, advice: AnalysisReport, shadow: ShadowRules.Verdict?, key: APIKey?,
                headers: inout HTTPFields) async throws
        -> (StreamPlan, AgentLoop<AnyLanguageModel>)
    {
        let plan = try RoutePlan(analysis: analysis, advice: advice, key: key, controller: self)
        let routed = try gate.capped(plan.chat(chat), key: key, defaultMaxTokens: plan.loop.maxTokens)
        let ticket = try await gate.admit(key)
        headers[.switchboardProvider] = analysis.route.providerName
        headers[.switchboardModel] = plan.loop.model
        let loop = AgentLoop(model: plan.model(ticket: ticket), tools: tools.only(key?.tools), configuration: plan.loop)
        var labels = StreamLabels(level: advice.complexity, route: analysis.route.name, provider: analysis.route.providerName,
                                  model: plan.loop.model)
        recordReview(of: chat, advice: advice, key: key, in: &labels)
        labels.shadow = shadow
        return (StreamPlan(chat: routed, ticket: ticket, labels: labels, extraHeaders: headers, routing: plan.decision, owner: key?.id),
                loop)
    }
}

/// What a smart-routed chat will run on, checked before admission: the route the key may take, the route's model
/// and every fallback model against the key's `models` and `SWITCHBOARD_ALLOWED_MODELS` (a fallback the key may
/// not use is left out, so the upstream never receives a model the key may not use), the loop's limits.
struct RoutePlan<Model: LanguageModel> {
    let analysis: Analysis
    let controller: ChatController<Model>
    var loop: AgentConfiguration
    var decision: RoutingDecision
    /// The fallbacks that may run, in order.
    let fallbacks: [RouteTarget]
    /// The route's own provider's client.
    let chosen: AnyLanguageModel

    init(analysis: Analysis, advice: AnalysisReport, key: APIKey?, controller: ChatController<Model>) throws {
        self.analysis = analysis
        self.controller = controller
        let configuration = controller.configuration
        let rules = controller.rules.active.rules
        loop = configuration.loop
        loop.model = advice.model ?? configuration.loop.model
        if let routes = key?.routes, !routes.contains(analysis.route.name) {
            throw APIError(.forbidden, code: .forbidden, message: "this key may not use the route \(analysis.route.name) "
                           + "(it may use \(routes.sorted().joined(separator: ", ")))")
        }
        let gate = controller.gate
        guard gate.permits(loop.model, key: key, rules: rules, defaultModel: configuration.loop.model) else {
            throw APIError(.forbidden, code: .modelNotAllowed, message: "the route \(analysis.route.name) streams with "
                           + "\(loop.model), which this key may not use")
        }
        fallbacks = analysis.route.fallbacks.filter { gate.permits($0.model, key: key, rules: rules, defaultModel: configuration.loop.model) }
        // A route's iteration limit never goes above the server's.
        loop.maxIterations = min(analysis.route.maxIterations ?? configuration.loop.maxIterations, configuration.loop.maxIterations)
        loop.maxTokens = gate.maxTokens(loop.maxTokens, key: key)
        decision = RoutingDecision(advice)
        decision.model = loop.model
        if let provider = analysis.route.provider {
            chosen = AnyLanguageModel(try controller.providers.model(for: provider))
        } else if let model = controller.model {
            chosen = AnyLanguageModel(model)
        } else {
            throw APIError.streamingNotConfigured
        }
    }

    /// The chat as sent upstream: the route chooses the model.
    func chat(_ chat: ChatRequest) -> ChatRequest {
        var chat = chat
        chat.model = nil
        return chat
    }

    /// The route's provider, metered and charged to the ticket; with fallbacks, those whose client can be had
    /// (a fallback on the built-in provider needs ANTHROPIC_API_KEY; one whose key variable went away is left out).
    func model(ticket: StreamTicket) -> AnyLanguageModel {
        // Each call is priced and counted under the provider that answered it.
        let prices = controller.rules.active.rules.providers
        func metered(_ client: some LanguageModel, provider: String) -> AnyLanguageModel {
            AnyLanguageModel(MeteredModel(base: client, provider: provider, prices: prices[provider]?.prices ?? [:],
                                          route: analysis.route.name, metrics: controller.metrics, ticket: ticket))
        }
        let routeModel = metered(chosen, provider: analysis.route.providerName)
        guard !fallbacks.isEmpty else { return routeModel }
        var targets = [FallbackModel.Target(provider: analysis.route.providerName, model: loop.model, client: routeModel)]
        for fallback in fallbacks {
            let client: (any LanguageModel)? = if let provider = fallback.provider { try? controller.providers.model(for: provider) }
                else { controller.model }
            if let client {
                targets.append(.init(provider: fallback.providerName, model: fallback.model,
                                     client: metered(AnyLanguageModel(client), provider: fallback.providerName)))
            }
        }
        return AnyLanguageModel(FallbackModel(targets: targets, breaker: controller.providers.breaker, decision: decision))
    }
}
