import Foundation
import Logging
import Tools

/// Opens the HR database a command names (a SQLite file, `:memory:`, or a `postgres://` URL), prepared
/// and seeded, for the duration of `body`; a PostgreSQL pool runs beside it and stops after.
func withHRDatabase<T: Sendable>(_ spec: String, logger: Logger,
                                 _ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
    let location = DatabaseLocation(spec)
    if let database = try location.openSQLite() {
        try await HRSchema.prepare(database)
        return try await body(database)
    }
    guard case .postgres(let url) = location else { preconditionFailure("only PostgreSQL runs as a service") }
    let postgres = try PostgresDatabase(url: url, logger: logger)
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

/// A logger for a command whose standard output is its product (tool results, the MCP protocol):
/// every line goes to standard error, at `LOG_LEVEL` or `defaultLevel`.
func standardErrorLogger(label: String, defaultLevel: Logger.Level = .warning) -> Logger {
    var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? defaultLevel
    return logger
}
