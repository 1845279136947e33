import ChatCore
import ChatPipeline
import Dialects
import Foundation
import HTTPTypes
import Hummingbird
import Routing

/// The OpenAI- and Anthropic-compatible endpoints: `POST /v1/chat/completions`, `POST /v1/messages` and
/// `GET /v1/models`, so the official SDKs (and everything built on them) use Switchboard by changing the base URL.
///
/// A request's `model` decides where it goes: `auto`, analysed with the rules and sent where its level's route
/// says (an advise route answers at once with its message, no model called); a route's name, that route; a model
/// id the key may use, that model on the provider a route names it with (else the built-in one); anything else,
/// 404 `model_not_found`. Every quota, cap and key rule of the native endpoints applies, through the same
/// `ChatController` planning; the answer is written in the dialect by its encoder. A streamed answer's head waits
/// for the model's first byte (at most `headWait`, then keepalive comments), so a failure before it is an HTTP
/// error the SDK raises as its typed exception.
struct CompatibleController<Model: LanguageModel>: Sendable {
    let chats: ChatController<Model>
    /// How long a streamed answer's head waits for the model's first byte before it goes out anyway.
    let headWait: Duration

    typealias Context = SwitchboardRequestContext

    func addRoutes(openAI: RouterGroup<Context>, anthropic: RouterGroup<Context>) {
        openAI.post("/v1/chat/completions", use: chatCompletions)
        openAI.get("/v1/models", use: models)
        anthropic.post("/v1/messages", use: messages)
    }

    /// `POST /v1/chat/completions`.
    @Sendable func chatCompletions(_ request: Request, context: Context) async throws -> Response {
        var request = request
        let body = try await request.collectChatBody(upTo: chats.configuration.maxBodyBytes)
        let asked: DialectRequest
        do {
            asked = try OpenAIChatRequest.parse(json: body.readableBytesView)
        } catch {
            throw APIError(error)
        }
        return try await answer(asked, endpoint: "chat_completions", context: context) { id, model in
            OpenAIEncoder(id: id, model: model, stream: asked.stream, includeUsage: asked.includeUsage,
                          clientTools: asked.chat.clientTools != nil)
        }
    }

    /// `POST /v1/messages`.
    @Sendable func messages(_ request: Request, context: Context) async throws -> Response {
        var request = request
        let body = try await request.collectChatBody(upTo: chats.configuration.maxBodyBytes)
        let asked: DialectRequest
        do {
            asked = try AnthropicMessagesRequest.parse(json: body.readableBytesView)
        } catch {
            throw APIError(error)
        }
        return try await answer(asked, endpoint: "messages", context: context) { id, model in
            AnthropicEncoder(id: id, model: model, stream: asked.stream, clientTools: asked.chat.clientTools != nil)
        }
    }

    /// `GET /v1/models`: `auto`, the routes, and the models the key may use, in OpenAI's list shape.
    @Sendable func models(_ request: Request, context: Context) async throws -> Response {
        let rules = chats.rules.active.rules
        let models = chats.gate.allowedModels(key: context.apiKey, rules: rules, defaultModel: chats.configuration.loop.model)
        let routes = rules.routes.keys.filter { context.apiKey?.routes?.contains($0) ?? true }.sorted()
        var names = [DialectRequest.automatic] + routes
        names += models.subtracting(names).sorted()
        let created = Int(chats.rules.active.loadedAt.timeIntervalSince1970)
        return try Response.json(ModelList(data: names.map { ModelList.Entry(id: $0, created: created) }))
    }

    /// Where a request's `model` sends it.
    enum Target {
        /// Smart routing: the analysed route (`nil`), or the named one.
        case route(String?)
        /// A model on a provider.
        case model(String, provider: Provider?)
    }

    func target(of model: String, key: APIKey?) throws -> Target {
        if model == DialectRequest.automatic { return .route(nil) }
        let rules = chats.rules.active.rules
        if rules.routes[model] != nil { return .route(model) }
        let defaultModel = chats.configuration.loop.model
        if chats.gate.permits(model, key: key, rules: rules, defaultModel: defaultModel) {
            if key?.routes != nil {
                throw APIError(.forbidden, code: .forbidden, message: "this key may only chat through smart routing: "
                               + "use model \"auto\" or one of the routes \(key!.routes!.sorted().joined(separator: ", "))", field: "model")
            }
            // The provider a route names the model with, else the built-in one.
            let targets = rules.routes.keys.sorted().compactMap { rules.routes[$0] }.flatMap { route in
                [route.model.map { RouteTarget(provider: route.provider, model: $0) }].compactMap { $0 } + route.fallbacks
            }
            return .model(model, provider: targets.first { $0.model == model }?.provider)
        }
        if chats.gate.permits(model, key: nil, rules: rules, defaultModel: defaultModel) {
            throw APIError(.forbidden, code: .modelNotAllowed, message: "the model \"\(model)\" is not one this key may use", field: "model")
        }
        throw APIError(.notFound, code: .modelNotFound, message: "the model \"\(model)\" does not exist here; use \"auto\", "
                       + "a route (\(rules.routes.keys.sorted().joined(separator: ", "))) or a model GET /v1/models lists", field: "model")
    }

    /// The answer to `asked`, in the bytes `encoder(id, model)` makes.
    private func answer<Encoding: EventEncoding>(_ asked: DialectRequest, endpoint: String, context: Context,
                                                  encoder: (String, String) -> Encoding) async throws -> Response {
        let key = context.apiKey
        let id = RandomID.hex32()
        let hold = asked.stream ? headWait : .zero
        switch try target(of: asked.model, key: key) {
        case .route(let name):
            var chat = asked.chat
            chat.route = name
            let (analysis, advice, verdict) = try chats.rules.analyze(chat, defaultModel: chats.configuration.loop.model, metrics: chats.metrics,
                                                             endpoint: endpoint)
            var headers = ChatController<Model>.routingHeaders(advice)
            guard analysis.route.action == .stream else {
                return Self.advice(advice.message ?? "", encoder: encoder(id, asked.model), headers: headers)
            }
            var (plan, loop) = try await chats.routed(chat, analysis: analysis, advice: advice, shadow: verdict, key: key,
                                                      headers: &headers)
            plan.holdHead = hold
            return ChatStream.response(plan, loop: loop, encoder: encoder(id, plan.labels.model), context: context, settings: chats.streams)
        case .model(let model, let provider):
            var chat = asked.chat
            chat.model = model
            let client: any LanguageModel
            if let provider {
                client = try chats.providers.model(for: provider)
            } else if let builtIn = chats.model {
                client = builtIn
            } else {
                throw APIError.streamingNotConfigured
            }
            var (plan, loop) = try await chats.direct(chat, key: key, client: AnyLanguageModel(client),
                                                      provider: provider?.name ?? Provider.builtIn, endpoint: endpoint)
            plan.holdHead = hold
            return ChatStream.response(plan, loop: loop, encoder: encoder(id, model), context: context, settings: chats.streams)
        }
    }

    /// An advise route's answer: its message as the model's whole text, no model called.
    static func advice<Encoding: EventEncoding>(_ message: String, encoder: Encoding, headers: HTTPFields) -> Response {
        var encoder = encoder
        var body: [UInt8] = []
        for event: StreamEvent in [.textChunk(message), .complete(Completion(iterations: 0, stopReason: .endTurn, totalTimeMs: 0,
                                                                                 usage: Usage()))] {
            body += encoder.bytes(for: event)
        }
        var headers = headers
        headers[.contentType] = encoder.contentType
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// `GET /v1/models`'s answer, in OpenAI's list shape.
struct ModelList: Encodable {
    struct Entry: Encodable {
        let id: String
        let object = "model"
        let created: Int
        let ownedBy = "switchboard"

        enum CodingKeys: String, CodingKey {
            case id, object, created
            case ownedBy = "owned_by"
        }
    }

    let object = "list"
    let data: [Entry]
}

/// Answers the errors of a compatible endpoint in its dialect's shape (`Dialect.errorBody`), with the status and
/// `Retry-After` of the native answer, so an SDK raises its typed exception (401 → AuthenticationError, 429 →
/// RateLimitError, …). It sits outside the group's key check, so refused keys are answered in the dialect too.
struct DialectErrorMiddleware: RouterMiddleware {
    typealias Context = SwitchboardRequestContext
    let dialect: Dialect

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            var response = Response(status: error.status, headers: [.contentType: "application/json"],
                                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: dialect.errorBody(
                                        status: error.status.code, code: error.code.rawValue, message: error.message, field: error.field))))
            if let retryAfter = error.retryAfter { response.headers[.retryAfter] = String(APIError.wholeSeconds(retryAfter)) }
            return response
        }
    }
}
