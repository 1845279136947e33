import Synchronization

/// How an event stream ended, told once by whoever sees it first (the producer finishing, the connection's
/// handler on the event loop, the shutdown timer, the response task's cancellation) and awaited by the stream's
/// owner. Later tellings are ignored.
final class StreamEndSignal: Sendable {
    private struct State {
        var ending: EventStream.Ending?
        var waiter: CheckedContinuation<EventStream.Ending, Never>?
    }

    private let state = Mutex(State())

    /// Whether an ending was told.
    var hasEnded: Bool {
        state.withLock { $0.ending != nil }
    }

    /// Tells `ending`, unless another was told first.
    func fire(_ ending: EventStream.Ending) {
        let waiter = state.withLock { state -> CheckedContinuation<EventStream.Ending, Never>? in
            guard state.ending == nil else { return nil }
            state.ending = ending
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: ending)
    }

    /// The ending, once told. One waiter at a time.
    func wait() async -> EventStream.Ending {
        await withCheckedContinuation { continuation in
            let told = state.withLock { state -> EventStream.Ending? in
                if let ending = state.ending { return ending }
                state.waiter = continuation
                return nil
            }
            if let told { continuation.resume(returning: told) }
        }
    }
}
