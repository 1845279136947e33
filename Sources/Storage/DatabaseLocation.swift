import ChatCore
import Foundation

/// Where the HR database lives, as `--database` and `SWITCHBOARD_DATABASE` name it: a SQLite file,
/// `:memory:`, or a `postgres://` URL. Read in one place so the server and every command agree.
public enum DatabaseLocation: Sendable, Equatable, CustomStringConvertible {
    case memory
    case sqlite(path: String)
    case postgres(url: String)

    public init(_ spec: String) {
        if spec == ":memory:" {
            self = .memory
        } else if spec.hasPrefix("postgres://") || spec.hasPrefix("postgresql://") {
            self = .postgres(url: spec)
        } else {
            self = .sqlite(path: spec)
        }
    }

    /// For messages and logs: a PostgreSQL URL without its password.
    public var description: String {
        switch self {
        case .memory: return ":memory:"
        case .sqlite(let path): return path
        case .postgres(let url):
            guard var components = URLComponents(string: url), components.password != nil else {
                return Redaction.credentials(in: url)
            }
            components.password = nil
            return components.string ?? "postgres://"
        }
    }

    /// The SQLite database here (not yet migrated); `nil` for PostgreSQL, whose pool must run as a service.
    public func openSQLite() throws -> SQLiteDatabase? {
        switch self {
        case .memory: try SQLiteDatabase()
        case .sqlite(let path): try SQLiteDatabase(path: path)
        case .postgres: nil
        }
    }
}
