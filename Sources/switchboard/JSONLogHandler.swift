import Foundation
import Logging

/// `--log-format json`: one JSON object per line on standard output, for log pipelines (Loki, Elasticsearch,
/// CloudWatch): `time` (ISO 8601, UTC, milliseconds), `level`, `message`, `label`, the metadata's fields under
/// `metadata` (the metadata provider's too: inside a traced chat, `trace_id` and `span_id`), and `source`.
/// Each line is written with one `write`, so lines of concurrent loggers never interleave.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, metadataProvider: Logger.MetadataProvider?) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String,
             function: String, line: UInt) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let explicit { fields.merge(explicit) { $1 } }
        let line = Self.line(time: Date(), level: level, message: message.description, label: label, metadata: fields, source: source)
        line.withUnsafeBufferPointer { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Foundation.write(STDOUT_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 { break }
                offset += written
            }
        }
    }

    /// One log line, newline included.
    static func line(time: Date, level: Logger.Level, message: String, label: String, metadata: Logger.Metadata,
                     source: String) -> [UInt8] {
        var object: [String: Any] = [
            "time": timestamp(time), "level": level.rawValue, "message": message, "label": label, "source": source,
        ]
        if !metadata.isEmpty { object["metadata"] = metadata.mapValues(plain) }
        var data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        data.append(0x0A)
        return Array(data)
    }

    /// A metadata value as JSON: strings, lists and objects as they are.
    private static func plain(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): values.map(plain)
        case .dictionary(let values): values.mapValues(plain)
        }
    }

    private static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(identifier: "UTC")!))
    }
}

/// How the server writes its log: `text` (swift-log's lines) or `json` (`JSONLogHandler`).
enum LogFormat: String, CaseIterable {
    case text
    case json
}
