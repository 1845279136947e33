import ChatCore
import Foundation
import Hummingbird
import Routing
import Synchronization

/// Everything checked before a chat may spend a single upstream byte: the request's caps, the models it may
/// name, the key's routes, its daily output budget, and the concurrent streams of the key and of the server.
struct StreamGate: Sendable {
    let quotas: any QuotaStore
    let limits: ServerLimits
    let metrics: ServerMetrics

    /// The chat with its caps applied: too many messages is a 400; `maxTokens` lowered to the server's ceiling and
    /// the key's. The model is checked by `checkModel` once the model the chat will run on is known.
    ///
    /// A thinking budget must stay below the call's `max_tokens` (the API's rule): the chat's, else
    /// `defaultMaxTokens`, both as capped here; otherwise a 400 naming `thinking.budgetTokens`.
    func capped(_ chat: ChatRequest, key: APIKey?, defaultMaxTokens: Int) throws -> ChatRequest {
        var chat = chat
        if chat.messages.count > limits.maxMessages {
            throw APIError(.badRequest, code: .invalidRequest,
                           message: "at most \(limits.maxMessages) messages per request, got \(chat.messages.count)",
                           field: "messages")
        }
        if let requested = chat.maxTokens {
            chat.maxTokens = min(requested, limits.maxTokensCeiling, key?.limits.maxTokens ?? .max)
        } else if let keyLimit = key?.limits.maxTokens {
            chat.maxTokens = keyLimit
        }
        if let budget = chat.thinkingBudget {
            let callLimit = chat.maxTokens ?? maxTokens(defaultMaxTokens, key: key)
            guard budget < callLimit else {
                throw APIError(.badRequest, code: .invalidRequest,
                               message: "thinking.budgetTokens (\(budget)) must be below the call's max_tokens (\(callLimit)): raise "
                                   + "maxTokens (the budget is part of it) or lower the budget", field: "thinking.budgetTokens")
            }
        }
        return chat
    }

    /// Whether a chat may run on `model`: the key's `models` and `SWITCHBOARD_ALLOWED_MODELS` both apply; with
    /// neither, any model the server itself would use (the default and every model a route names).
    func permits(_ model: String, key: APIKey?, rules: RuleSet, defaultModel: String) -> Bool {
        allowedModels(key: key, rules: rules, defaultModel: defaultModel).contains(model)
    }

    /// `POST /mcp/chat/stream`: the model the chat really runs on (the request's, else the server's default) must be
    /// allowed; a key whose list excludes the default must name one of its models (400 `model_not_allowed`).
    func checkModel(of chat: ChatRequest, key: APIKey?, rules: RuleSet, defaultModel: String) throws {
        let model = chat.model ?? defaultModel
        let allowedSet = allowedModels(key: key, rules: rules, defaultModel: defaultModel)
        guard !allowedSet.contains(model) else { return }
        let allowed = allowedSet.sorted().joined(separator: ", ")
        let message = chat.model == nil
            ? "no model was named and the default model \"\(model)\" is not allowed for this key; name one of: \(allowed)"
            : "the model \"\(model)\" is not allowed; allowed: \(allowed)"
        throw APIError(.badRequest, code: .modelNotAllowed, message: message, field: "model")
    }

    /// The models a chat may run on: the key's list and the server's, each where set (both: the models on both);
    /// with neither, the default model and every model a route of the rules names.
    func allowedModels(key: APIKey?, rules: RuleSet, defaultModel: String) -> Set<String> {
        switch (key?.models, limits.allowedModels) {
        case (let mine?, let server?): return mine.intersection(server)
        case (let mine?, nil): return mine
        case (nil, let server?): return server
        case (nil, nil):
            let routeModels = rules.routes.values.flatMap { route in [route.model].compactMap { $0 } + route.fallbacks.map(\.model) }
            return Set(routeModels + [defaultModel])
        }
    }

    /// `max_tokens` of a chat's model calls: the configured value, never above the server's ceiling or the key's.
    func maxTokens(_ configured: Int, key: APIKey?) -> Int {
        min(configured, limits.maxTokensCeiling, key?.limits.maxTokens ?? .max)
    }

    /// Takes a stream slot for the key (and the server), after its daily budget (the request itself was counted
    /// by `AuthenticationMiddleware` before the body was read); the slot is given back when the stream ends.
    func admit(_ key: APIKey?) async throws -> StreamTicket {
        try await ChatTracing.admission(key: key?.id) { try await admitNow(key) }
    }

    private func admitNow(_ key: APIKey?) async throws -> StreamTicket {
        let id = key?.id ?? StreamTicket.anonymous
        let today = utcToday()
        let request = AdmissionRequest(key: id, outputTokensPerDay: key?.limits.outputTokensPerDay, day: today.day,
                                       concurrentStreams: key?.limits.concurrentStreams, serverLimit: limits.maxStreams)
        let admission: StreamAdmission
        do {
            admission = try await quotas.admit(request)
        } catch {
            throw APIError.quotasUnavailable
        }
        switch admission {
        case .admitted(let slot):
            metrics.keyStream(key?.id)
            return StreamTicket(slot: slot, quotas: quotas, metrics: metrics)
        case .rateLimited(let wait):
            throw APIError.rateLimited(key?.limits.requestsPerMinute ?? 0, retryAfter: wait)
        case .budgetExhausted:
            throw APIError(.tooManyRequests, code: .budgetExhausted,
                           message: "this key's \(key?.limits.outputTokensPerDay ?? 0) output tokens for today (UTC) are spent",
                           retryAfter: today.remaining)
        case .keyFull:
            throw APIError(.tooManyRequests, code: .tooManyStreams,
                           message: "this key has \(key?.limits.concurrentStreams ?? 0) streams open, as many as it may",
                           retryAfter: .seconds(1))
        case .serverFull:
            throw APIError(.serviceUnavailable, code: .overloaded,
                           message: "the server has \(limits.maxStreams) streams open, as many as it may", retryAfter: .seconds(1))
        }
    }

    /// Takes one request from the key's bucket, when it has a requests-per-minute limit: `429 rate_limited` when
    /// they are used up, `503 quotas_unavailable` when the quota store does not answer.
    static func countRequest(_ key: APIKey?, quotas: any QuotaStore) async throws {
        guard let key, let perMinute = key.limits.requestsPerMinute else { return }
        let wait: Duration?
        do {
            wait = try await quotas.takeRequest(key: key.id, perMinute: perMinute)
        } catch {
            throw APIError.quotasUnavailable
        }
        if let wait { throw APIError.rateLimited(perMinute, retryAfter: wait) }
    }
}

/// A stream's slot in the quotas, given back when the stream ends (`end`, before its last bytes), or when the
/// response lets go of it, however the stream ended. Each model call charges its output tokens through it, as the
/// call ends, for the key's daily budget.
final class StreamTicket: Sendable {
    static let anonymous = "anonymous"

    let slot: StreamSlot
    var key: String { slot.key }
    private let quotas: any QuotaStore
    private let metrics: ServerMetrics
    private let released = Atomic<Bool>(false)

    init(slot: StreamSlot, quotas: any QuotaStore, metrics: ServerMetrics) {
        self.slot = slot
        self.quotas = quotas
        self.metrics = metrics
    }

    /// One model call's tokens, booked to the key.
    func spent(_ usage: Usage) {
        quotas.addOutputTokens(usage.outputTokens, key: key, day: utcToday().day)
        metrics.keyTokens(key, input: usage.inputTokens, output: usage.outputTokens)
    }

    /// Gives the slot back now, everywhere (a shared store is written before this returns).
    func end() async {
        guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        await quotas.releaseNow(slot)
    }

    deinit {
        if !released.load(ordering: .acquiring) { quotas.release(slot) }
    }
}
