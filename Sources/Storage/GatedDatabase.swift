import Synchronization

/// A latch that opens once: callers of `wait()` suspend until `open()`, until `fail(_:)` (they throw its error,
/// as every later caller does), or until their task is cancelled.
public final class ReadinessGate: Sendable {
    private struct State {
        var open = false
        var failure: (any Error)?
        var nextId = 0
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [:] }
            return state.waiters.values
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The gate will never open (the database could not be prepared): every waiter, now and later, throws `error`.
    public func fail(_ error: any Error) {
        let waiters = state.withLock { state in
            state.failure = error
            defer { state.waiters = [:] }
            return state.waiters.values
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    /// Returns once the gate is open; throws `CancellationError` if the task is cancelled first.
    public func wait() async throws {
        let id = state.withLock { state in
            state.nextId += 1
            return state.nextId
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = state.withLock { state in
                    if state.open { return .success(()) }
                    if let failure = state.failure { return .failure(failure) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }
}

/// A database whose queries wait until it has been prepared (migrated and seeded), for backends whose
/// connection pool only starts with the server.
public struct GatedDatabase: SQLDatabase {
    public let base: any SQLDatabase
    public let gate: ReadinessGate

    public init(base: any SQLDatabase, gate: ReadinessGate) {
        self.base = base
        self.gate = gate
    }

    public var description: String { base.description }

    public func fetch(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        try await gate.wait()
        return try await base.fetch(sql, arguments)
    }

    public func transaction(_ statements: [(sql: String, arguments: [SQLValue])]) async throws {
        try await gate.wait()
        try await base.transaction(statements)
    }
}
