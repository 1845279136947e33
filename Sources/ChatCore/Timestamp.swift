import Foundation

/// ISO-8601 UTC timestamps with milliseconds (`2026-11-25T12:24:23.481Z`), the one format every answer and event uses.
public enum Timestamp {
    public static func iso8601(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
