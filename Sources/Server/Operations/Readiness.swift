import ChatCore
import ServiceLifecycle
import Storage
import Synchronization

/// What `GET /ready` answers: whether a load balancer should send this instance traffic. Ready while the
/// database answers and no shutdown is under way; the rules are always loaded once the server runs (a server
/// without good rules does not start). `/health` stays liveness.
public final class Readiness: Sendable {
    private let database: Mutex<(any SQLDatabase)?>
    private let shuttingDown = Mutex(false)
    /// The last database check: when it finished and what it found (`nil`: the database answered).
    private let lastCheck = Mutex<(at: ContinuousClock.Instant, problem: String?, running: Bool)?>(nil)
    /// How long the database has to answer `SELECT 1`.
    static let databaseTimeout: Duration = .seconds(2)
    /// How long a database check's answer is reused: a flood of probes costs one query a second, and cannot take
    /// the pool's connections from quota admission and the tools.
    static let databaseCheckReuse: Duration = .seconds(1)

    public init(database: (any SQLDatabase)? = nil) {
        self.database = Mutex(database)
    }

    /// The database to check, once it is open.
    func attach(_ database: any SQLDatabase) {
        self.database.withLock { $0 = database }
    }

    /// From now on `/ready` says 503: called the moment SIGTERM or SIGINT arrives.
    public func beginShutdown() {
        shuttingDown.withLock { $0 = true }
    }

    /// Why this instance should get no traffic now; empty when it is ready.
    func reasons() async -> [String] {
        var reasons: [String] = []
        if shuttingDown.withLock({ $0 }) { reasons.append("shutting down") }
        if let database = database.withLock({ $0 }), let problem = await databaseProblem(database) {
            reasons.append(problem)
        }
        return reasons
    }

    /// The database check's finding, reused for `databaseCheckReuse`; while one check runs, others reuse the last.
    private func databaseProblem(_ database: any SQLDatabase) async -> String? {
        let now = ContinuousClock.now
        let reused: String?? = lastCheck.withLock { last in
            if let check = last, check.running || now - check.at < Self.databaseCheckReuse { return .some(check.problem) }
            last = (at: last?.at ?? now, problem: last?.problem, running: true)
            return .none
        }
        if let reused { return reused }
        let problem: String?
        do {
            let answered = try await withTimeout(Self.databaseTimeout) { try await database.fetch("SELECT 1 AS one", []) }
            problem = answered == nil ? "the database did not answer within \(Self.databaseTimeout.inMilliseconds) ms" : nil
        } catch {
            problem = "the database cannot be queried"
        }
        lastCheck.withLock { $0 = (at: .now, problem: problem, running: false) }
        return problem
    }
}

extension Readiness: Service {
    /// Says not ready when the shutdown reaches it. `switchboard serve` runs it after the application in its
    /// service group, which shuts services down last to first: so it hears of SIGTERM or SIGINT first, before
    /// the server stops and drains its streams.
    public func run() async throws {
        try? await gracefulShutdown()
        beginShutdown()
    }
}

/// The body of `GET /ready`.
struct ReadinessResponse: Encodable {
    enum Status: String, Encodable {
        case ready
        case notReady = "not_ready"
    }

    let status: Status
    let reasons: [String]
    /// Which instance answered, and the rules and keys it serves: drift between instances shows here.
    let instance: String
    let rulesVersion: String?
    let keysVersion: String?

    private enum CodingKeys: String, CodingKey { case status, reasons, instance, rulesVersion, keysVersion }

    /// Every field always present: a missing version is `null`, not absent.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(status, forKey: .status)
        try container.encode(reasons, forKey: .reasons)
        try container.encode(instance, forKey: .instance)
        try container.encode(rulesVersion, forKey: .rulesVersion)
        try container.encode(keysVersion, forKey: .keysVersion)
    }
}
