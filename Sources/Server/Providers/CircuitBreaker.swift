import Synchronization

/// Skips a provider that keeps failing: after `threshold` failures in a row it is "cooling down" for `coolDown`,
/// and a route with fallbacks goes to the next one at once instead of waiting on it. One success closes it again.
public final class CircuitBreaker: Sendable {
    private struct State {
        var failures = 0
        var openUntil: ContinuousClock.Instant?
    }

    private let threshold: Int
    private let coolDown: Duration
    private let states = Mutex<[String: State]>([:])

    public init(threshold: Int = 3, coolDown: Duration = .seconds(30)) {
        self.threshold = threshold
        self.coolDown = coolDown
    }

    /// Whether `provider` is cooling down now.
    public func isOpen(_ provider: String) -> Bool {
        states.withLock { $0[provider]?.openUntil.map { ContinuousClock.now < $0 } ?? false }
    }

    func failed(_ provider: String) {
        states.withLock { states in
            var state = states[provider] ?? State()
            state.failures += 1
            if state.failures >= threshold { state.openUntil = .now + coolDown }
            states[provider] = state
        }
    }

    func succeeded(_ provider: String) {
        _ = states.withLock { $0.removeValue(forKey: provider) }
    }

    /// The providers cooling down now, for `/health`.
    public var coolingDown: [String] {
        let now = ContinuousClock.now
        return states.withLock { $0.filter { $0.value.openUntil.map { now < $0 } ?? false }.keys.sorted() }
    }
}
