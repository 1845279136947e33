import ChatCore
import Synchronization
import Upstream

/// A route's model with its fallbacks: each model call goes to the first target that is not cooling down; when it
/// fails before its first byte (could not connect, timed out, rate-limited, overloaded, a 5xx), the next target is
/// tried at once (a target with another after it makes one attempt, no backoff) and the stream hears a new `routing` decision with `fallbackFrom` and the reason. Once anything
/// of the answer arrived, a failure is the stream's error, as without fallbacks: never a silent switch mid-answer.
/// A chat that moved stays where it moved: its later model calls (after tools) go to the target that answered first.
struct FallbackModel: LanguageModel {
    /// The target that answered this chat's last call, which its next call tries first.
    private final class Answering: Sendable {
        let provider = Mutex<String?>(nil)
    }

    struct Target: Sendable {
        let provider: String
        let model: String
        let client: any LanguageModel
    }

    let targets: [Target]
    let breaker: CircuitBreaker
    /// The decision the stream was told first; fallbacks tell it again with their provider and model.
    let decision: RoutingDecision
    private let answering = Answering()

    init(targets: [Target], breaker: CircuitBreaker, decision: RoutingDecision) {
        self.targets = targets
        self.breaker = breaker
        self.decision = decision
    }

    func streamTurn(_ request: ModelRequest, into sink: some EventSink<ModelStreamEvent>) async throws -> ModelTurn {
        // The target that answered this chat before goes first; targets cooling down go last, so they are tried
        // only when nothing else is left.
        let answered = answering.provider.withLock { $0 }
        let preferred = targets.filter { "\($0.provider)/\($0.model)" == answered } + targets.filter { "\($0.provider)/\($0.model)" != answered }
        let ordered = preferred.filter { !breaker.isOpen($0.provider) } + preferred.filter { breaker.isOpen($0.provider) }
        var failed: (target: Target, error: StreamError)?
        for (position, target) in ordered.enumerated() {
            if let (from, error) = failed {
                var moved = decision
                moved.provider = target.provider
                moved.model = target.model
                moved.fallbackFrom = "\(from.provider)/\(from.model)"
                moved.reason = error.code.rawValue
                try await sink.take(.routing(moved))
            }
            // Whether anything of the answer arrived (set where the events are read, read here after the call).
            let watched = StartWatchingSink(base: sink)
            var call = request
            call.model = target.model
            // With somewhere left to go, one attempt: the next target is tried at once, not after a backoff.
            if position < ordered.count - 1 { call.maxAttempts = 1 }
            do {
                let turn = try await target.client.streamTurn(call, into: watched)
                breaker.succeeded(target.provider)
                answering.provider.withLock { $0 = "\(target.provider)/\(target.model)" }
                return turn
            } catch let error as StreamError where !watched.started && Self.fallsBack(error.code) {
                breaker.failed(target.provider)
                failed = (target, error)
            }
        }
        throw failed?.error ?? StreamError(code: .internalError, message: "The route has no model to call.", retryable: false)
    }

    /// A sink that notes whether anything of the answer arrived, passing every event on to `base`.
    private struct StartWatchingSink<Base: EventSink<ModelStreamEvent>>: EventSink {
        private final class Started: Sendable {
            let value = Atomic(false)
        }

        let base: Base
        private let flag = Started()

        init(base: Base) {
            self.base = base
        }

        var started: Bool { flag.value.load(ordering: .relaxed) }

        func takeNow(_ event: ModelStreamEvent) throws -> Bool {
            flag.value.store(true, ordering: .relaxed)
            return try base.takeNow(event)
        }

        func take(_ event: ModelStreamEvent) async throws {
            flag.value.store(true, ordering: .relaxed)
            try await base.take(event)
        }

        var deadlines: DeadlineKeeper { base.deadlines }
    }

    /// Failures another provider may not have.
    static func fallsBack(_ code: StreamErrorCode) -> Bool {
        switch code {
        case .overloaded, .rateLimited, .upstreamError, .upstreamUnreachable, .connectTimeout, .firstByteTimeout: true
        default: false
        }
    }
}
