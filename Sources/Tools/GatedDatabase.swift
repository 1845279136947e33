import Synchronization

/// A latch that opens once: callers of `wait()` suspend until `open()`.
public final class ReadinessGate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    public init() {}

    public func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    public func wait() async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
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
        await gate.wait()
        return try await base.fetch(sql, arguments)
    }

    public func transaction(_ statements: [(sql: String, arguments: [SQLValue])]) async throws {
        await gate.wait()
        try await base.transaction(statements)
    }
}
