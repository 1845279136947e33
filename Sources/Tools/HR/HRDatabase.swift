import Logging
import ServiceLifecycle

/// The HR database at a `DatabaseLocation`, opened, migrated and seeded: the one opener the server and every
/// command use.
public struct HRDatabase: Sendable {
    /// Where the tools query. For PostgreSQL, queries wait until the schema has been prepared.
    public let database: any SQLDatabase
    /// PostgreSQL's connection pool, to run in the service group (or beside a command); `nil` for SQLite.
    public let service: (any Service)?

    /// Opens the database. SQLite is prepared before this returns; PostgreSQL once its pool is up (a failure
    /// there fails the service's `run()`).
    /// `preparePostgres`: more to prepare on a PostgreSQL database (the server's shared quota tables) before it
    /// opens for queries.
    public static func open(_ location: DatabaseLocation, logger: Logger,
                            preparePostgres: (@Sendable (any SQLDatabase) async throws -> Void)? = nil) async throws -> HRDatabase {
        if let sqlite = try location.openSQLite() {
            let seeded = try await HRSchema.prepare(sqlite)
            logger.info("HR database ready", metadata: ["database": "\(sqlite.description)", "seeded": "\(seeded)"])
            return HRDatabase(database: sqlite, service: nil)
        }
        guard case .postgres(let url) = location else { throw ToolError("No database at \(location).") }
        let gate = ReadinessGate()
        let postgres = try PostgresDatabase(url: url, logger: logger) { database in
            // Instances starting together on one database take turns.
            let seeded = try await database.exclusively(lock: 727_100) { database in
                let seeded = try await HRSchema.prepare(database)
                try await preparePostgres?(database)
                return seeded
            }
            logger.info("HR database ready", metadata: ["database": "\(database.description)", "seeded": "\(seeded)"])
            gate.open()
        }
        return HRDatabase(database: GatedDatabase(base: postgres, gate: gate), service: postgres)
    }
}
