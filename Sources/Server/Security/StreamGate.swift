import ChatCore
import Foundation
import Hummingbird
import Routing

/// Everything checked before a chat may spend a single upstream byte: the request's caps, the models it may
/// name, the key's routes, its daily output budget, and the concurrent streams of the key and of the server.
struct StreamGate: Sendable {
    let quotas: any QuotaStore
    let limits: ServerLimits
    let metrics: ServerMetrics

    /// The chat with its caps applied: too many messages is a 400; a model outside the allowed list a 400 naming
    /// the allowed ones; `maxTokens` lowered to the server's ceiling and the key's.
    func capped(_ chat: ChatRequest, key: APIKey?, rules: RuleSet, defaultModel: String) throws -> ChatRequest {
        var chat = chat
        if chat.messages.count > limits.maxMessages {
            throw APIError(.badRequest, code: .invalidRequest,
                           message: "at most \(limits.maxMessages) messages per request, got \(chat.messages.count)",
                           field: "messages")
        }
        if let model = chat.model {
            let allowed = allowedModels(key: key, rules: rules, defaultModel: defaultModel)
            guard allowed.contains(model) else {
                throw APIError(.badRequest, code: .modelNotAllowed,
                               message: "the model \"\(model)\" is not allowed; allowed: \(allowed.sorted().joined(separator: ", "))",
                               field: "model")
            }
        }
        if let requested = chat.maxTokens {
            chat.maxTokens = min(requested, limits.maxTokensCeiling, key?.limits.maxTokens ?? .max)
        } else if let keyLimit = key?.limits.maxTokens {
            chat.maxTokens = keyLimit
        }
        return chat
    }

    /// The models a request may name: the key's list, else the server's, else the default model and every model
    /// a route of the rules names.
    func allowedModels(key: APIKey?, rules: RuleSet, defaultModel: String) -> Set<String> {
        if let models = key?.models { return models }
        if let models = limits.allowedModels { return models }
        return Set(rules.routes.values.compactMap(\.model)).union([defaultModel])
    }

    /// The model calls for one chat: the loop's default, or a route's, never above the server's limit.
    func maxTokens(_ configured: Int, key: APIKey?) -> Int {
        min(configured, limits.maxTokensCeiling, key?.limits.maxTokens ?? .max)
    }

    /// Takes a stream slot for the key (and the server), after its request bucket (`countRequest`: the chat
    /// endpoints count their request here, so a shared store answers all of it in one round trip) and its daily
    /// budget; the slot is given back when the ticket goes away, however the stream ends.
    func admit(_ key: APIKey?, countRequest: Bool) async throws -> StreamTicket {
        let id = key?.id ?? StreamTicket.anonymous
        let today = utcToday()
        let request = AdmissionRequest(key: id, requestsPerMinute: countRequest ? key?.limits.requestsPerMinute : nil,
                                       outputTokensPerDay: key?.limits.outputTokensPerDay, day: today.day,
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

    /// Counts a request of a chat endpoint that opens no stream (smart routing's advice).
    func countRequest(_ key: APIKey?) async throws {
        try await Self.countRequest(key, quotas: quotas)
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

/// A stream's slot in the quotas: given back when the stream's response lets go of it. The stream reports its
/// output tokens through it, for the key's daily budget.
final class StreamTicket: Sendable {
    static let anonymous = "anonymous"

    let slot: StreamSlot
    var key: String { slot.key }
    private let quotas: any QuotaStore
    private let metrics: ServerMetrics

    init(slot: StreamSlot, quotas: any QuotaStore, metrics: ServerMetrics) {
        self.slot = slot
        self.quotas = quotas
        self.metrics = metrics
    }

    func spent(_ usage: Usage) {
        quotas.addOutputTokens(usage.outputTokens, key: key, day: utcToday().day)
        metrics.keyTokens(key, input: usage.inputTokens, output: usage.outputTokens)
    }

    deinit {
        quotas.release(slot)
    }
}
