import ChatCore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// PostgreSQL through postgres-nio's connection pool. The pool runs as a `Service` (its `run()`), so it
/// belongs in the server's service group; queries wait for it.
public final class PostgresDatabase: SQLDatabase, Service {
    private let client: PostgresClient
    /// For `exclusively`: a connection of its own, outside the pool.
    private let ownConnection: PostgresConnection.Configuration
    private let logger: Logger
    private let prepare: (@Sendable (PostgresDatabase) async throws -> Void)?
    public let description: String

    /// Connects with a URL such as `postgres://user:password@127.0.0.1:5432/hr` (`?sslmode=disable` turns TLS off).
    /// `prepare` runs once the pool is up (migrations, seeding); if it fails, `run()` fails.
    public init(url: String, logger: Logger = Logger(label: "switchboard.postgres"),
                prepare: (@Sendable (PostgresDatabase) async throws -> Void)? = nil) throws {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? ""),
              let host = components.host, !host.isEmpty else {
            throw DatabaseError("Not a PostgreSQL URL: expected postgres://user:password@host:5432/database.")
        }
        let mode = Self.sslMode(components)
        let tls: PostgresClient.Configuration.TLS = switch mode {
        case "disable": .disable
        case "require": .require(.makeClientConfiguration())
        default: .prefer(.makeClientConfiguration())
        }
        let database = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
            password: components.password, database: database.isEmpty ? nil : database, tls: tls)
        configuration.options.maximumConnections = Self.maxConnections
        client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let ownTLS: PostgresConnection.Configuration.TLS = switch mode {
        case "disable": .disable
        case "require": .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        default: .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        ownConnection = PostgresConnection.Configuration(
            host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
            password: components.password, database: database.isEmpty ? nil : database, tls: ownTLS)
        self.logger = logger
        self.prepare = prepare
        // The password stays out of descriptions and logs.
        description = "postgres://\(components.user ?? "postgres")@\(host):\(components.port ?? 5432)/\(database)"
    }

    /// The pool's connections at most: admissions, tools and stream records of one instance share them.
    static let maxConnections = 20

    /// The URL's `sslmode`; without one, `prefer` on loopback and `require` anywhere else, so a password never
    /// crosses a network in clear unless the URL says `sslmode=disable`.
    static func sslMode(_ components: URLComponents) -> String {
        if let mode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value { return mode }
        return Loopback.isLoopback(host: components.host ?? "") ? "prefer" : "require"
    }

    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.client.run() }
            if let prepare {
                do {
                    // A server stopping before its database is ready stops preparing it (it is safe to redo).
                    try await cancelWhenGracefulShutdown { try await prepare(self) }
                } catch {
                    logger.error("PostgreSQL database could not be prepared: \(String(reflecting: error))")
                    throw error
                }
            }
            try await group.waitForAll()
        }
    }

    /// A query heeds cancellation: the driver's in-flight queries do not, so a cancelled one (a deadline passed,
    /// the caller went away) closes its connection, which ends it at once; the pool opens another.
    public func fetch(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        let logger = self.logger
        return try await client.withConnection { connection in
            try await Self.closingOnCancel(connection) {
                try await Self.collect(try await Self.send(Self.query(sql, arguments), on: connection, logger: logger))
            }
        }
    }

    /// Runs `body` on `connection`, closing the connection if the task is cancelled meanwhile. The connection goes
    /// back to the pool only once it is closed, so the next query never leases it half-closed.
    private static func closingOnCancel<T: Sendable>(_ connection: PostgresConnection, _ body: () async throws -> T) async throws -> T {
        let closing = Closing()
        do {
            return try await withTaskCancellationHandler {
                try await body()
            } onCancel: {
                closing.started.store(true, ordering: .releasing)
                connection.close().whenComplete { _ in }
            }
        } catch {
            if closing.started.load(ordering: .acquiring) { await closing.waitForClose(of: connection) }
            throw error
        }
    }

    /// Every row of a result, by column name.
    static func collect(_ rows: PostgresRowSequence) async throws -> [SQLRow] {
        var result: [SQLRow] = []
        for try await row in rows {
            var fields: SQLRow = [:]
            for cell in row { fields[cell.columnName] = try value(cell) }
            result.append(fields)
        }
        return result
    }

    public func transaction(_ statements: [(sql: String, arguments: [SQLValue])]) async throws {
        let logger = self.logger
        try await client.withConnection { connection in
            try await Self.closingOnCancel(connection) {
                try await Self.transaction(statements, on: connection, logger: logger)
            }
        }
    }

    /// Runs `body` on a connection of its own that holds the session advisory lock `lock`: instances starting
    /// together take turns (migrations, seeding), and the lock goes when `body` ends, or with the connection.
    ///
    /// The connection is not the pool's, so a pool that stops (a graceful shutdown as the server starts) never
    /// closes it under a running statement; a cancelled caller closes it, which ends the statement at once. Every
    /// wait is bounded by the server itself: the lock by `lockWait` (another instance preparing), each statement by
    /// `statementLimit`.
    public func exclusively<T: Sendable>(lock: Int64, lockWait: Duration = .seconds(120), statementLimit: Duration = .seconds(60),
                                         _ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        let logger = self.logger
        let connection = try await PostgresConnection.connect(configuration: ownConnection, id: 0, logger: logger)
        do {
            let result = try await Self.closingOnCancel(connection) {
                let own = OneConnection(connection: connection, logger: logger, description: description)
                _ = try await own.fetch("SELECT set_config('lock_timeout', ?, false), set_config('statement_timeout', ?, false)",
                                        [.text("\(lockWait.inMilliseconds)ms"), .text("\(statementLimit.inMilliseconds)ms")])
                _ = try await own.fetch("SELECT pg_advisory_lock(?)", [.int(lock)])
                return try await body(own)
            }
            try? await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Runs `statements` in one transaction on `connection`. Not postgres-nio's `withTransaction`, which sends
    /// `ROLLBACK` after any failure: on a connection that closed (a cancelled query's, a stopped pool's) that query is
    /// never answered, and its caller waits forever. Here nothing is sent on a closed connection; PostgreSQL rolls back
    /// the transaction of a connection that went.
    static func transaction(_ statements: [(sql: String, arguments: [SQLValue])], on connection: PostgresConnection,
                            logger: Logger) async throws {
        _ = try await send("BEGIN", on: connection, logger: logger)
        do {
            for statement in statements {
                _ = try await send(query(statement.sql, statement.arguments), on: connection, logger: logger)
            }
            _ = try await send("COMMIT", on: connection, logger: logger)
        } catch {
            if !connection.isClosed { _ = try? await send("ROLLBACK", on: connection, logger: logger) }
            throw error
        }
    }

    /// Sends one query. postgres-nio writes a query without a write promise, so one written to a connection that has
    /// closed is never answered: it is refused here instead.
    static func send(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws -> PostgresRowSequence {
        guard !connection.isClosed else { throw DatabaseError("the PostgreSQL connection closed before the query was sent") }
        return try await connection.query(query, logger: logger)
    }

    /// The database through one leased connection, for `exclusively`.
    private struct OneConnection: SQLDatabase {
        let connection: PostgresConnection
        let logger: Logger
        let description: String

        func fetch(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
            try await PostgresDatabase.collect(try await PostgresDatabase.send(PostgresDatabase.query(sql, arguments), on: connection,
                                                                               logger: logger))
        }

        func transaction(_ statements: [(sql: String, arguments: [SQLValue])]) async throws {
            let logger = self.logger
            try await PostgresDatabase.transaction(statements, on: connection, logger: logger)
        }
    }

    /// `?` placeholders become `$1`, `$2`, … (outside quoted text), and the values become binds.
    static func query(_ sql: String, _ arguments: [SQLValue]) -> PostgresQuery {
        var text = ""
        var number = 0
        var quoted = false
        for character in sql {
            if character == "'" { quoted.toggle() }
            if character == "?", !quoted {
                number += 1
                text += "$\(number)"
            } else {
                text.append(character)
            }
        }
        var binds = PostgresBindings(capacity: arguments.count)
        for argument in arguments {
            switch argument {
            case .null: binds.appendNull()
            case .int(let value): binds.append(value)
            case .double(let value): binds.append(value)
            case .text(let value): binds.append(value)
            }
        }
        return PostgresQuery(unsafeSQL: text, binds: binds)
    }

    static func value(_ cell: PostgresCell) throws -> SQLValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2: return .int(Int64(try cell.decode(Int16.self)))
        case .int4: return .int(Int64(try cell.decode(Int32.self)))
        case .int8: return .int(try cell.decode(Int64.self))
        case .float4: return .double(Double(try cell.decode(Float.self)))
        case .float8: return .double(try cell.decode(Double.self))
        case .numeric: return .double(Double(try cell.decode(String.self)) ?? 0)
        case .bool: return .int(try cell.decode(Bool.self) ? 1 : 0)
        default: return .text(try cell.decode(String.self))
        }
    }
}

/// Whether a cancelled query's connection is being closed (set by the cancellation handler).
private final class Closing: Sendable {
    let started = Atomic(false)
    private let settled = Atomic(false)

    /// The longest a cancelled query waits for its connection to close before it goes back to the pool anyway.
    static let closeWait = TimeAmount.seconds(1)

    /// Returns when `connection` has closed, or after `closeWait`, whichever comes first.
    func waitForClose(of connection: PostgresConnection) async {
        let promise = connection.eventLoop.makePromise(of: Void.self)
        let settle: @Sendable () -> Void = { [self] in
            if settled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged { promise.succeed() }
        }
        connection.closeFuture.whenComplete { _ in settle() }
        let timer = connection.eventLoop.scheduleTask(in: Self.closeWait) { settle() }
        try? await promise.futureResult.get()
        timer.cancel()
    }
}
