/// A value in or out of SQL.
public enum SQLValue: Sendable, Hashable {
    case null
    case int(Int64)
    case double(Double)
    case text(String)

    public var int: Int? {
        switch self {
        case .int(let value): Int(value)
        case .double(let value): Int(exactly: value.rounded(.towardZero))
        default: nil
        }
    }

    public var double: Double? {
        switch self {
        case .int(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }

    public var text: String? {
        if case .text(let value) = self { return value }
        return nil
    }
}

/// One result row, by column name.
public typealias SQLRow = [String: SQLValue]

/// The little the tools need from a database, so one set of queries runs on SQLite and PostgreSQL.
///
/// Statements use `?` placeholders; every value a caller gives travels as an argument, never in the SQL text.
public protocol SQLDatabase: Sendable {
    /// A short name for logs and `GET /health`-style reports ("sqlite:data/hr.sqlite").
    var description: String { get }
    func fetch(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow]
    /// Runs the statements in one transaction.
    func transaction(_ statements: [(sql: String, arguments: [SQLValue])]) async throws
}
