import ChatCore
import ServiceLifecycle
import Synchronization
import Tools
import UnixSignals

/// What `GET /ready` answers: whether a load balancer should send this instance traffic. Ready while the
/// database answers and no shutdown is under way; the rules are always loaded once the server runs (a server
/// without good rules does not start). `/health` stays liveness.
public final class Readiness: Sendable {
    private let database: (any SQLDatabase)?
    private let shuttingDown = Mutex(false)
    /// How long the database has to answer `SELECT 1`.
    static let databaseTimeout: Duration = .seconds(2)

    public init(database: (any SQLDatabase)? = nil) {
        self.database = database
    }

    /// From now on `/ready` says 503: called the moment SIGTERM or SIGINT arrives.
    public func beginShutdown() {
        shuttingDown.withLock { $0 = true }
    }

    /// Why this instance should get no traffic now; empty when it is ready.
    func reasons() async -> [String] {
        var reasons: [String] = []
        if shuttingDown.withLock({ $0 }) { reasons.append("shutting down") }
        if let database {
            do {
                let answered = try await withTimeout(Self.databaseTimeout) { try await database.fetch("SELECT 1 AS one", []) }
                if answered == nil { reasons.append("the database did not answer within \(Self.databaseTimeout.inMilliseconds) ms") }
            } catch {
                reasons.append("the database cannot be queried")
            }
        }
        return reasons
    }
}

extension Readiness: Service {
    /// Watches for SIGTERM and SIGINT, and for a graceful shutdown begun another way, and says not ready at once.
    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in signals { self.beginShutdown() }
            }
            // Returns when the shutdown reaches this service (or it is cancelled): running until then keeps the
            // service group from mistaking an early return for a failure.
            try? await gracefulShutdown()
            self.beginShutdown()
            group.cancelAll()
        }
    }
}

/// The body of `GET /ready`.
struct ReadinessResponse: Encodable {
    let status: String
    let reasons: [String]
}
