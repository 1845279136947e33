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
    /// Where each admitted stream of a key is watched, so a revoked key's streams end (`nil` without keys).
    var streams: KeyedStreams? = nil

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
            let ticket = StreamTicket(slot: slot, quotas: quotas, metrics: metrics, outputTokensPerDay: key?.limits.outputTokensPerDay)
            if let key, let streams { ticket.watch(key, in: streams) }
            return ticket
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
    /// The key's daily output budget, checked before each model call after the first (admission checked that one).
    private let outputTokensPerDay: Int?
    private let calls = Atomic<Int>(0)
    private let released = Atomic<Bool>(false)
    /// The key's revocation: where it is watched, and what ends the stream (or the error, when it came first).
    private struct Revocation {
        var streams: KeyedStreams?
        var watch: Int?
        var stop: (@Sendable (StreamError) -> Void)?
        var revoked: StreamError?
    }
    private let revocation = Mutex(Revocation())

    init(slot: StreamSlot, quotas: any QuotaStore, metrics: ServerMetrics, outputTokensPerDay: Int? = nil) {
        self.slot = slot
        self.quotas = quotas
        self.metrics = metrics
        self.outputTokensPerDay = outputTokensPerDay
    }

    /// Before each of the chat's model calls: `BudgetSpent` when the key's daily output budget is spent (the chat
    /// ends with `stopReason: budget`); a quota store that does not answer ends the chat with `quotas_unavailable`
    /// rather than let a call go unchecked. The first call was checked at admission.
    func beforeCall() async throws {
        let first = calls.add(1, ordering: .relaxed).newValue == 1
        guard !first, let budget = outputTokensPerDay else { return }
        let spent: Int
        do {
            spent = try await quotas.outputTokens(key: key, day: utcToday().day)
        } catch {
            throw StreamError(code: .quotasUnavailable, message: "The quota store did not answer; the chat was stopped before its next model call.",
                              retryable: true)
        }
        if spent >= budget { throw BudgetSpent() }
    }

    /// One model call's tokens, booked to the key.
    func spent(_ usage: Usage) {
        quotas.addOutputTokens(usage.outputTokens, key: key, day: utcToday().day)
        metrics.keyTokens(key, input: usage.inputTokens, output: usage.outputTokens)
    }

    /// Watches the key in `streams`: once it is revoked, the stream's `onRevoked` hears it.
    func watch(_ key: APIKey, in streams: KeyedStreams) {
        let id = streams.watch(key) { [weak self] error in self?.revoke(error) }
        revocation.withLock {
            $0.streams = streams
            $0.watch = id
        }
    }

    /// What ends the stream when its key is revoked (at once, when that already happened).
    func onRevoked(_ stop: @escaping @Sendable (StreamError) -> Void) {
        let revoked = revocation.withLock { state -> StreamError? in
            state.stop = stop
            return state.revoked
        }
        if let revoked { stop(revoked) }
    }

    private func revoke(_ error: StreamError) {
        let stop = revocation.withLock { state in
            state.revoked = error
            return state.stop
        }
        stop?(error)
    }

    /// Gives the slot back now, everywhere (a shared store is written before this returns).
    func end() async {
        forget()
        guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        await quotas.releaseNow(slot)
    }

    private func forget() {
        let (streams, id) = revocation.withLock { state in
            defer { state.watch = nil }
            return (state.streams, state.watch)
        }
        if let streams, let id { streams.forget(id) }
    }

    deinit {
        forget()
        if !released.load(ordering: .acquiring) { quotas.release(slot) }
    }
}
