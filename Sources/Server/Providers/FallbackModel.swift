import ChatCore
import Synchronization
import Upstream

/// A route's model with its fallbacks: each model call goes to the first target that is not cooling down; when it
/// fails before its first byte (could not connect, timed out, rate-limited, overloaded, a 5xx), the next target is
/// tried at once (a target with another after it makes one attempt, no backoff) and the stream hears a new `routing` decision with `fallbackFrom` and the reason. Once anything
/// of the answer arrived, a failure is the stream's error, as without fallbacks: never a silent switch mid-answer.
/// A chat that moved stays where it moved: its later model calls (after tools) go to the target that answered first.
struct FallbackModel: RelayingLanguageModel {
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

    func streamTurn(_ request: ModelRequest, deliverNow: DeliverNow?, onEvent: (ModelStreamEvent) async throws -> Void)
        async throws -> ModelTurn {
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
                try await onEvent(.routing(moved))
            }
            // Whether anything of the answer arrived (set where the events are read, read here after the call).
            let started = Started()
            var call = request
            call.model = target.model
            do {
                // With somewhere left to go, one attempt: the next target is tried at once, not after a backoff.
                let isLast = position == ordered.count - 1
                let turn = try await RetryPolicy.$attemptsLimit.withValue(isLast ? nil : 1) {
                    var relay: DeliverNow?
                    if let deliverNow {
                        relay = { @Sendable event in
                            started.value.store(true, ordering: .relaxed)
                            return try deliverNow(event)
                        }
                    }
                    return try await target.client.streamTurn(call, deliverNow: relay) { event in
                        started.value.store(true, ordering: .relaxed)
                        try await onEvent(event)
                    }
                }
                breaker.succeeded(target.provider)
                answering.provider.withLock { $0 = "\(target.provider)/\(target.model)" }
                return turn
            } catch let error as StreamError where !started.value.load(ordering: .relaxed) && Self.fallsBack(error.code) {
                breaker.failed(target.provider)
                failed = (target, error)
            }
        }
        throw failed?.error ?? StreamError(code: .internalError, message: "The route has no model to call.", retryable: false)
    }

    private final class Started: Sendable {
        let value = Atomic(false)
    }

    /// Failures another provider may not have.
    static func fallsBack(_ code: StreamErrorCode) -> Bool {
        switch code {
        case .overloaded, .rateLimited, .upstreamError, .upstreamUnreachable, .connectTimeout, .firstByteTimeout: true
        default: false
        }
    }
}
