import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// A real OTLP/HTTP trace receiver: `Fixtures/otlp_receiver.py`, decoding what it receives with the official
/// `opentelemetry-proto` classes from PyPI (`.ci/run` installs them), in a child process on a free port.
public final class OTLPReceiver: @unchecked Sendable {
    public static let available = pythonCanImport("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/otlp_receiver.py").path

    let process = Process()
    public private(set) var port = 0
    /// What `OTEL_EXPORTER_OTLP_ENDPOINT` should say to reach it.
    public var endpoint: String { "http://127.0.0.1:\(port)" }

    /// `delay`: every export is answered that late (a slow collector).
    public init(delay: Duration = .zero) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script, "--delay", String(delay.timeInterval)]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Its first line says where it listens.
        var line = Data()
        while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data([0x0A]) { line.append(byte) }
        guard let text = String(data: line, encoding: .utf8), text.hasPrefix("listening "), let port = Int(text.dropFirst(10)) else {
            stop()
            throw CocoaError(.fileReadUnknown, userInfo: [NSDebugDescriptionErrorKey: "the OTLP receiver did not start"])
        }
        self.port = port
    }

    /// Every span received so far, as the script describes them (`name`, `kind`, `traceId`, `spanId`,
    /// `parentSpanId`, `start`, `end`, `status`, `attributes`, `events`, `resource`).
    public func spans() async throws -> [[String: Any]] {
        let (data, _) = try await URLSession.shared.data(from: URL(string: "\(endpoint)/spans")!)
        return try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? []
    }

    /// The spans of trace `traceId`, once `enough` says they are all there (within `deadline`).
    public func trace(_ traceId: String, deadline: Duration = .seconds(15),
                      until enough: ([[String: Any]]) -> Bool) async throws -> [[String: Any]] {
        let end = ContinuousClock.now + deadline
        while true {
            let spans = try await spans().filter { $0["traceId"] as? String == traceId }
            if enough(spans) || ContinuousClock.now > end { return spans }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    public func stop() {
        if process.isRunning {
            process.terminate()
            process.waitForExit(within: .seconds(2))
        }
    }

    deinit { stop() }
}
