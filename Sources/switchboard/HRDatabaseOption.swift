import Foundation
import Logging
import Tools

/// Opens the HR database a command names (a SQLite file, `:memory:`, or a `postgres://` URL), prepared
/// and seeded, for the duration of `body`; a PostgreSQL pool runs beside it and stops after.
func withHRDatabase<T: Sendable>(_ spec: String, logger: Logger,
                                 _ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
    if spec.hasPrefix("postgres://") || spec.hasPrefix("postgresql://") {
        let postgres = try PostgresDatabase(url: spec, logger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await postgres.run(); return nil }
            group.addTask {
                try await HRSchema.prepare(postgres)
                return try await body(postgres)
            }
            // The pool runs until cancelled; the first result is the body's (or an error from either).
            while let result = try await group.next() {
                if let result {
                    group.cancelAll()
                    return result
                }
            }
            throw CancellationError()
        }
    }
    let database = spec == ":memory:" ? try SQLiteDatabase() : try SQLiteDatabase(path: spec)
    try await HRSchema.prepare(database)
    return try await body(database)
}
