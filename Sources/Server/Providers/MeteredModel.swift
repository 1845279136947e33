import ChatCore
import Routing
import Synchronization

/// A model client as one chat's calls see it: each call is priced from its provider's `prices` in the rules
/// file, its tokens and cost are counted in `/metrics` by provider, model and route, and its output is charged to
/// the chat's key as the call ends, however it ends. A call cut short (the client went away, an error, a
/// shutdown, a cancel, a write deadline) reported no usage, so it is charged an estimate of what was produced
/// (`CutCallEstimate`).
struct MeteredModel<Base: LanguageModel>: LanguageModel {
    let base: Base
    let provider: String
    /// The provider's prices by model, as the rules were when the chat arrived.
    let prices: [String: ModelPrice]
    /// The route the chat took; `none` for `POST /mcp/chat/stream`.
    let route: String
    let metrics: ServerMetrics
    /// Where the key's tokens are booked; `nil` for a chat with no admission (tests).
    var ticket: StreamTicket? = nil

    func streamTurn(_ request: ModelRequest, into sink: some EventSink<ModelStreamEvent>) async throws -> ModelTurn {
        let clock = ContinuousClock()
        let started = clock.now
        guard let ticket else {
            do {
                let turn = try await base.streamTurn(request, into: sink)
                return finish(turn, request, elapsed: clock.now - started)
            } catch {
                failed(error, request, elapsed: clock.now - started)
                throw error
            }
        }
        try await ticket.beforeCall()
        let produced = CountingSink(base: sink)
        let turn: ModelTurn
        do {
            turn = try await base.streamTurn(request, into: produced)
        } catch {
            let usage = Usage(outputTokens: produced.estimate.outputTokens)
            ticket.spent(usage)
            metrics.modelCall(provider: provider, model: request.model, route: route, usage: usage)
            failed(error, request, elapsed: clock.now - started)
            throw error
        }
        let priced = finish(turn, request, elapsed: clock.now - started)
        // A provider that reports no usage (some OpenAI-compatible servers) still produced what was relayed: the
        // key is charged the estimate (the stream's own `usage` stays what the provider said).
        var charged = priced.usage
        if charged.outputTokens == 0 { charged.outputTokens = produced.estimate.outputTokens }
        ticket.spent(charged)
        return priced
    }

    /// A failed call in the GenAI metrics: its duration, with the error's code as `error_type`.
    private func failed(_ error: any Error, _ request: ModelRequest, elapsed: Duration) {
        let type = (error as? StreamError)?.code.rawValue ?? (error is CancellationError ? "cancelled" : "_OTHER")
        metrics.genAICall(provider: provider, model: request.model, route: route, duration: elapsed, errorType: type, firstChunk: nil,
                          usage: nil)
    }

    private func finish(_ turn: ModelTurn, _ request: ModelRequest, elapsed: Duration) -> ModelTurn {
        metrics.genAICall(provider: provider, model: request.model, route: route, duration: elapsed, errorType: nil,
                          firstChunk: turn.firstChunkAfter, usage: turn.usage)
        var turn = turn
        if let price = prices[request.model] {
            let usage = turn.usage
            turn.usage.costUSD = price.cost(input: usage.inputTokens, output: usage.outputTokens,
                                            cacheRead: usage.cacheReadTokens, cacheWrite: usage.cacheWriteTokens)
        }
        metrics.modelCall(provider: provider, model: request.model, route: route, usage: turn.usage)
        return turn
    }
}

/// What a call cut short is charged: one token per 4 bytes of text received (rounded up), and 32 tokens for each
/// tool call begun (its input is read whole, not relayed as it arrives). Providers count about 4 bytes of English
/// per token; the estimate leans high rather than let a cut call go free.
final class CutCallEstimate: Sendable {
    static let bytesPerToken = 4
    static let tokensPerToolCall = 32

    /// Text bytes and tool calls seen; the events of one call arrive one after another.
    private let bytes = Atomic<Int>(0)
    private let toolCalls = Atomic<Int>(0)

    func count(_ event: ModelStreamEvent) {
        switch event {
        case .text(let text), .thinking(let text): bytes.add(text.utf8.count, ordering: .relaxed)
        case .toolUseStarted: toolCalls.add(1, ordering: .relaxed)
        case .routing: break
        }
    }

    var outputTokens: Int {
        let text = bytes.load(ordering: .relaxed)
        return (text + Self.bytesPerToken - 1) / Self.bytesPerToken + toolCalls.load(ordering: .relaxed) * Self.tokensPerToolCall
    }
}

/// A sink that counts what it delivered for `CutCallEstimate`, passing every event on to `base`.
private struct CountingSink<Base: EventSink<ModelStreamEvent>>: EventSink {
    let base: Base
    let estimate = CutCallEstimate()

    func takeNow(_ event: ModelStreamEvent) throws -> Bool {
        guard try base.takeNow(event) else { return false }
        estimate.count(event)
        return true
    }

    func take(_ event: ModelStreamEvent) async throws {
        estimate.count(event)
        try await base.take(event)
    }

    var deadlines: DeadlineKeeper { base.deadlines }
}
