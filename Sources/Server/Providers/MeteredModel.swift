import ChatCore
import Routing

/// A model client as one chat's calls see it: each finished call is priced from its provider's `prices` in the
/// rules file, and its tokens and cost are counted in `/metrics` by provider, model and route.
struct MeteredModel<Base: LanguageModel>: RelayingLanguageModel {
    let base: Base
    let provider: String
    /// The provider's prices by model, as the rules were when the chat arrived.
    let prices: [String: ModelPrice]
    /// The route the chat took; `none` for `POST /mcp/chat/stream`.
    let route: String
    let metrics: ServerMetrics

    func streamTurn(_ request: ModelRequest, deliverNow: DeliverNow?, onEvent: (ModelStreamEvent) async throws -> Void)
        async throws -> ModelTurn {
        var turn = try await base.streamTurn(request, deliverNow: deliverNow, onEvent: onEvent)
        if let price = prices[request.model] {
            let usage = turn.usage
            turn.usage.costUSD = price.cost(input: usage.inputTokens, output: usage.outputTokens,
                                            cacheRead: usage.cacheReadTokens, cacheWrite: usage.cacheWriteTokens)
        }
        metrics.modelCall(provider: provider, model: request.model, route: route, usage: turn.usage)
        return turn
    }
}
