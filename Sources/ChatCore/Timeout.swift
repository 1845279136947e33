import Synchronization

/// Runs `operation`, giving up after `limit`: `nil` when time ran out. It returns at the deadline even when the
/// operation ignores cancellation: the operation is cancelled and left to end on its own, never awaited.
///
/// `onTimeout` runs when time is up, before returning: it can unblock an operation that does not heed
/// cancellation (for example by closing the connection it waits on). Cancelling the caller cancels the
/// operation and returns (or throws) at once too.
public func withTimeout<T: Sendable>(_ limit: Duration, onTimeout: @escaping @Sendable () async -> Void = {},
                                     _ operation: @escaping @Sendable () async throws -> T) async throws -> T? {
    let race = TimeoutRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T?, any Error>) in
            race.start(continuation, limit: limit, onTimeout: onTimeout, operation: operation)
        }
    } onCancel: {
        race.cancel()
    }
}

/// The two sides of `withTimeout`: the operation and the clock, each an unstructured task so that neither has
/// to wait for the other. The first to finish takes the caller's continuation, cancels the other side and
/// resumes the caller.
private final class TimeoutRace<T: Sendable>: Sendable {
    private enum Side { case operation, clock }

    private struct State {
        var continuation: CheckedContinuation<T?, any Error>?
        var operation: Task<Void, Never>?
        var clock: Task<Void, Never>?
        /// The caller was cancelled, or one side finished: a side started from now on is cancelled at once.
        var over = false
    }

    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T?, any Error>, limit: Duration, onTimeout: @escaping @Sendable () async -> Void,
               operation: @escaping @Sendable () async throws -> T) {
        let cancelledAlready = state.withLock { state in
            if !state.over { state.continuation = continuation }
            return state.over
        }
        guard !cancelledAlready else {
            continuation.resume(throwing: CancellationError())
            return
        }
        keep(.operation, Task {
            let result: Result<T?, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            self.take(cancelling: [.clock])?.resume(with: result)
        })
        keep(.clock, Task {
            guard (try? await Task.sleep(for: limit)) != nil, let continuation = self.take(cancelling: [.operation]) else { return }
            await onTimeout()
            continuation.resume(returning: nil)
        })
    }

    func cancel() {
        take(cancelling: [.operation, .clock])?.resume(throwing: CancellationError())
    }

    /// Remembers a side's task, or cancels it when the race is already over.
    private func keep(_ side: Side, _ task: Task<Void, Never>) {
        let over = state.withLock { state in
            switch side {
            case .operation: state.operation = task
            case .clock: state.clock = task
            }
            return state.over
        }
        if over { task.cancel() }
    }

    /// The caller's continuation, for the first to finish (`nil` for the others); the race is over and the
    /// `cancelling` sides are cancelled.
    private func take(cancelling sides: [Side]) -> CheckedContinuation<T?, any Error>? {
        let (continuation, tasks) = state.withLock { state in
            guard !state.over else { return (nil as CheckedContinuation<T?, any Error>?, [Task<Void, Never>]()) }
            state.over = true
            defer { state.continuation = nil }
            let tasks = sides.compactMap { $0 == .operation ? state.operation : state.clock }
            return (state.continuation, tasks)
        }
        for task in tasks { task.cancel() }
        return continuation
    }
}

extension Duration {
    /// Whole milliseconds, as events and logs report times.
    public var inMilliseconds: Int {
        Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
    }
}
