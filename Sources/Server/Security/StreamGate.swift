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

    /// Takes a stream slot for the key (and the server), after its daily budget; the slot is given back when the
    /// ticket goes away, however the stream ends.
    func admit(_ key: APIKey?) throws -> StreamTicket {
        let id = key?.id ?? StreamTicket.anonymous
        if let budget = key?.limits.outputTokensPerDay {
            let today = InMemoryQuotaStore.today()
            if quotas.outputTokens(key: id, day: today.day) >= budget {
                throw APIError(.tooManyRequests, code: .budgetExhausted,
                               message: "this key's \(budget) output tokens for today (UTC) are spent", retryAfter: today.remaining)
            }
        }
        switch quotas.openStream(key: id, limit: key?.limits.concurrentStreams, serverLimit: limits.maxStreams) {
        case .admitted:
            metrics.keyStream(key?.id)
            return StreamTicket(key: id, quotas: quotas, metrics: metrics)
        case .keyFull:
            throw APIError(.tooManyRequests, code: .tooManyStreams,
                           message: "this key has \(key?.limits.concurrentStreams ?? 0) streams open, as many as it may",
                           retryAfter: .seconds(1))
        case .serverFull:
            throw APIError(.serviceUnavailable, code: .overloaded,
                           message: "the server has \(limits.maxStreams) streams open, as many as it may", retryAfter: .seconds(1))
        }
    }
}

/// A stream's slot in the quotas: given back when the stream's response lets go of it. The stream reports its
/// output tokens through it, for the key's daily budget.
final class StreamTicket: Sendable {
    static let anonymous = "anonymous"

    let key: String
    private let quotas: any QuotaStore
    private let metrics: ServerMetrics

    init(key: String, quotas: any QuotaStore, metrics: ServerMetrics) {
        self.key = key
        self.quotas = quotas
        self.metrics = metrics
    }

    func spent(_ usage: Usage) {
        quotas.addOutputTokens(usage.outputTokens, key: key, day: InMemoryQuotaStore.today().day)
        metrics.keyTokens(key, input: usage.inputTokens, output: usage.outputTokens)
    }

    deinit {
        quotas.closeStream(key: key)
    }
}
