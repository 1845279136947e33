import Foundation
import GRDB

/// SQLite through GRDB: a WAL database pool on a file, or an in-memory queue for tests.
public struct SQLiteDatabase: SQLDatabase {
    private let writer: any DatabaseWriter
    public let description: String

    /// Opens (creating it and its folder if needed) the database file at `path`.
    public init(path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        writer = try DatabasePool(path: path, configuration: configuration)
        description = "sqlite:\(path)"
    }

    /// A private in-memory database.
    public init() throws {
        writer = try DatabaseQueue()
        description = "sqlite::memory:"
    }

    public func fetch(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        let bindings = StatementArguments(arguments.map(\.databaseValue))
        return try await writer.read { db in
            try Row.fetchAll(db, sql: sql, arguments: bindings).map { row in
                var result: SQLRow = [:]
                for (column, value) in row { result[column] = SQLValue(value) }
                return result
            }
        }
    }

    public func transaction(_ statements: [(sql: String, arguments: [SQLValue])]) async throws {
        let prepared = statements.map { ($0.sql, StatementArguments($0.arguments.map(\.databaseValue))) }
        try await writer.write { db in
            for (sql, arguments) in prepared { try db.execute(sql: sql, arguments: arguments) }
        }
    }
}

extension SQLValue {
    init(_ value: DatabaseValue) {
        switch value.storage {
        case .null: self = .null
        case .int64(let number): self = .int(number)
        case .double(let number): self = .double(number)
        case .string(let text): self = .text(text)
        case .blob(let data): self = .text(String(decoding: data, as: UTF8.self))
        }
    }

    var databaseValue: DatabaseValue {
        switch self {
        case .null: .null
        case .int(let number): number.databaseValue
        case .double(let number): number.databaseValue
        case .text(let text): text.databaseValue
        }
    }
}
