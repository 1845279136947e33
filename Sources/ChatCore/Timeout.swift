/// Runs `operation`, giving up after `limit`: `nil` when time ran out.
///
/// Structured: the operation and the clock race as two child tasks, and the loser is cancelled. At the deadline
/// `onTimeout` runs first, to unblock an operation that does not heed cancellation (for example by closing the
/// connection it waits on); `withTimeout` then returns once the operation has ended, so nothing it started
/// outlives the caller. Cancelling the caller cancels the operation the same way.
public func withTimeout<T: Sendable>(_ limit: Duration, onTimeout: @escaping @Sendable () async -> Void = {},
                                     _ operation: @escaping @Sendable () async throws -> T) async throws -> T? {
    try await withThrowingTaskGroup(of: TimeoutRace<T>.self) { group in
        group.addTask { .finished(try await operation()) }
        group.addTask {
            try await Task.sleep(for: limit)
            return .timedOut
        }
        defer { group.cancelAll() }
        switch try await group.next() {
        case .finished(let value):
            return value
        case .timedOut:
            group.cancelAll()
            await onTimeout()
            // The operation's end (its value, or the error cancelling it caused) is not the caller's any more.
            while (try? await group.next()) != nil {}
            return nil
        case nil:
            throw CancellationError()
        }
    }
}

/// Which side of `withTimeout` ended first.
private enum TimeoutRace<T: Sendable>: Sendable {
    case finished(T)
    case timedOut
}

extension Duration {
    /// Whole milliseconds, as events and logs report times.
    public var inMilliseconds: Int {
        Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
    }
}
