import AnthropicMock
import Foundation
import Hummingbird
import HummingbirdTesting
import TestSupport
import Testing
@testable import Server

#if canImport(Glibc)
import Glibc
#endif

private let nginxBinary = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
    .first { FileManager.default.isExecutableFile(atPath: $0) }

/// The `location` block Docs/STREAMING.md gives operators, so the test runs what the docs say.
private func documentedLocation(backendPort: Int) throws -> String {
    let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Docs/STREAMING.md")
    let text = try String(contentsOf: docs, encoding: .utf8)
    guard let start = text.range(of: "```nginx\n"), let end = text.range(of: "```", range: start.upperBound..<text.endIndex) else {
        throw CocoaError(.fileReadCorruptFile)
    }
    return text[start.upperBound..<end.lowerBound].replacingOccurrences(of: "http://127.0.0.1:3000", with: "http://127.0.0.1:\(backendPort)")
}

/// nginx on loopback in front of the server, with the documented settings.
private final class Nginx: Sendable {
    let port: Int
    let process: Process
    let prefix: URL

    init(backendPort: Int) throws {
        port = freeLoopbackPort()
        prefix = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-nginx-\(UUID())")
        try FileManager.default.createDirectory(at: prefix, withIntermediateDirectories: true)
        let p = prefix.path
        let configuration = """
            daemon off;
            master_process off;
            pid \(p)/nginx.pid;
            error_log \(p)/error.log warn;
            events { worker_connections 256; }
            http {
                access_log off;
                client_body_temp_path \(p)/body;
                proxy_temp_path \(p)/proxy;
                fastcgi_temp_path \(p)/fastcgi;
                uwsgi_temp_path \(p)/uwsgi;
                scgi_temp_path \(p)/scgi;
                server {
                    listen 127.0.0.1:\(port);
                    \(try documentedLocation(backendPort: backendPort))
                }
            }
            """
        try configuration.write(to: prefix.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: nginxBinary!)
        process.arguments = ["-p", p, "-c", "\(p)/nginx.conf", "-e", "\(p)/error.log"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    var errorLog: String { (try? String(contentsOf: prefix.appendingPathComponent("error.log"), encoding: .utf8)) ?? "" }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: prefix)
    }
}

@Suite("Behind nginx", .serialized, .timeLimit(.minutes(1)),
       .enabled(if: nginxBinary != nil, "needs nginx (.ci/run installs it)"))
struct NginxTests {
    @Test("with the documented settings, events cross nginx as they happen: nothing is buffered")
    func unbuffered() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Hello"), .pause(.milliseconds(700)),
                                  SSE.text(0, " world"), SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]))
            let app = try await buildApplication(configuration: streamingConfiguration(mock, keepalive: .milliseconds(200)))
            try await app.test(.live) { client in
                let nginx = try Nginx(backendPort: try #require(client.port))
                defer { nginx.stop() }
                #expect(await eventually { acceptsConnections(port: nginx.port) }, "\(nginx.errorLog)")
                let stream = try await streamChat(port: nginx.port, body: chatJSON("hi"))
                #expect(stream.status == 200)
                #expect(stream.header("content-type") == "text/event-stream; charset=utf-8")
                #expect(stream.header("content-length") == nil)
                #expect(stream.header("content-encoding") == nil)
                #expect(stream.types == ["session_start", "iteration_start", "text_chunk", "text_chunk", "complete"])
                let chunks = stream.arrivals.filter { $0.type == "text_chunk" }
                // Causality, not milliseconds: the first chunk reached the client through nginx before the upstream
                // had even sent the second (pieces: message_start, block start, "Hello", " world", …).
                let secondSent = try #require(mock.sent.dropFirst(3).first)
                #expect(chunks[0].at < secondSent)
                // Keepalive comments sent during the pause got through too, as they were sent.
                #expect(stream.keepalives.contains { $0 > chunks[0].at && $0 < chunks[1].at }, "\(stream.keepalives.count) keepalives")
            }
        }
    }
}
