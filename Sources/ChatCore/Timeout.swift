/// Runs `operation`, giving up after `limit`: `nil` when time ran out (the operation is cancelled).
///
/// `onTimeout` runs when time is up, before waiting for the cancelled operation to end: it can unblock an
/// operation that does not heed cancellation (for example by closing the connection it waits on).
public func withTimeout<T: Sendable>(_ limit: Duration, onTimeout: @Sendable () async -> Void = {},
                                     _ operation: @escaping @Sendable () async throws -> T) async throws -> T? {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        let first = try await group.next()!
        group.cancelAll()
        if first == nil { await onTimeout() }
        return first
    }
}

extension Duration {
    /// Whole milliseconds, as events and logs report times.
    public var inMilliseconds: Int {
        Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
    }
}
