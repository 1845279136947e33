import Logging
import ServiceLifecycle

/// Tables one part of Switchboard keeps in the database (the HR tools', the shared quotas', the stream
/// records'), prepared as the database opens: `prepare` creates or migrates what is missing, is safe on every
/// start, and returns what it did worth a log line ("seeded"), or `nil`.
public struct DatabaseSchema: Sendable {
    public let name: String
    public let prepare: @Sendable (any SQLDatabase) async throws -> String?

    public init(name: String, prepare: @escaping @Sendable (any SQLDatabase) async throws -> String?) {
        self.name = name
        self.prepare = prepare
    }
}

/// The database at a `DatabaseLocation`, opened and its schemas prepared: the one opener the server and every
/// command use.
public struct PreparedDatabase: Sendable {
    /// Where queries go. For PostgreSQL, they wait until the schemas have been prepared.
    public let database: any SQLDatabase
    /// PostgreSQL's connection pool, to run in the service group (or beside a command); `nil` for SQLite.
    public let service: (any Service)?

    /// The advisory lock instances starting together on one PostgreSQL database take turns with (migrations,
    /// seeding).
    public static let preparationLockKey: Int64 = 727_100

    /// Opens the database and prepares `schemas`, in order. SQLite is prepared before this returns; PostgreSQL
    /// once its pool is up (a failure there fails the service's `run()`).
    public static func open(_ location: DatabaseLocation, schemas: [DatabaseSchema], logger: Logger) async throws -> PreparedDatabase {
        @Sendable func prepare(_ database: any SQLDatabase) async throws -> [String] {
            var done: [String] = []
            for schema in schemas {
                if let what = try await schema.prepare(database) { done.append("\(schema.name) \(what)") }
            }
            return done
        }
        if let sqlite = try location.openSQLite() {
            let done = try await prepare(sqlite)
            logger.info("database ready", metadata: ["database": "\(sqlite.description)", "prepared": "\(done.joined(separator: ", "))"])
            return PreparedDatabase(database: sqlite, service: nil)
        }
        guard case .postgres(let url) = location else { throw DatabaseError("No database at \(location).") }
        let gate = ReadinessGate()
        let postgres = try PostgresDatabase(url: url, logger: logger) { database in
            do {
                let done = try await database.exclusively(lock: preparationLockKey) { try await prepare($0) }
                logger.info("database ready", metadata: ["database": "\(database.description)", "prepared": "\(done.joined(separator: ", "))"])
                gate.open()
            } catch {
                // Nobody waits for a database that will not be ready: its queries fail at once from now on.
                gate.fail(error)
                throw error
            }
        }
        return PreparedDatabase(database: GatedDatabase(base: postgres, gate: gate), service: postgres)
    }
}

/// A database that cannot be opened as named.
public struct DatabaseError: Error, Sendable, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
