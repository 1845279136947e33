import AnthropicMock
import Foundation
import Testing
import TestSupport

@Suite("A client that stops reading, against the server process", .serialized, .timeLimit(.minutes(1)))
struct StalledClientTests {
    @Test("the server's memory stays flat while the client reads nothing; after the write timeout the client is dropped and the upstream request closed")
    func memoryFlatThenDropped() async throws {
        try await MockAnthropic.run { mock in
            // A long answer, sent faster than any client reads it (and still being sent when the deadline comes); with
            // `accumulated` each event repeats the answer so far, so a server that buffered for a client that does not
            // read would grow by gigabytes.
            let answer = SSE.textAnswer(Array(repeating: String(repeating: "z", count: 1_000), count: 20_000))
            mock.enqueue(.stream(SSE.paced(answer, pauseEvery: 5, for: .milliseconds(1))))
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let server = try ServerProcess(directory: directory, arguments: [], environment: [
                "ANTHROPIC_API_KEY": "sk-ant-cli-test", "ANTHROPIC_BASE_URL": mock.baseURL, "SWITCHBOARD_WRITE_TIMEOUT": "2",
            ])
            defer { server.stop() }
            let pid = server.process.processIdentifier
            let started = ContinuousClock.now
            let client = try NonReadingClient(port: server.port, body: #"{"messages":[{"role":"user","content":"write a lot"}]}"#)
            defer { client.release() }
            var samples: [(at: Duration, rss: Int)] = []
            while mock.disconnects.isEmpty, ContinuousClock.now - started < .seconds(20) {
                if let rss = residentBytes(pid) { samples.append((ContinuousClock.now - started, rss)) }
                try await Task.sleep(for: .milliseconds(50))
            }
            let log = (try? String(contentsOf: server.logURL, encoding: .utf8)) ?? ""
            let closed = try #require(mock.disconnects.first, "the upstream request was never closed\n\(log)")
            // Dropped by the write deadline, not before it (the client never closes its socket), and soon after it.
            #expect(closed - started >= .seconds(2))
            #expect(closed - started < .seconds(12))
            #expect(mock.finished == 0, "the upstream was not read to its end")
            #expect(mock.received.count == 1)
            // Flat: from half a second in (the stream stalled long before) to the drop, at most a few MiB more.
            let baseline = try #require(samples.first { $0.at >= .milliseconds(500) }?.rss)
            let peak = try #require(samples.map(\.rss).max())
            #expect(peak - baseline < 16 << 20, "RSS grew from \(baseline >> 20) MiB to \(peak >> 20) MiB")
            // The stream's log line follows its booking, which may finish a moment after the upstream saw the close.
            var ended = log
            let logDeadline = ContinuousClock.now + .seconds(5)
            while !ended.contains("stream ended early: client went away"), ContinuousClock.now < logDeadline {
                try await Task.sleep(for: .milliseconds(50))
                ended = (try? String(contentsOf: server.logURL, encoding: .utf8)) ?? ""
            }
            #expect(ended.contains("stream ended early: client went away"), "\(ended)")
        }
    }
}

/// The resident set size of process `pid`, from /proc.
private func residentBytes(_ pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
    else { return nil }
    return kilobytes * 1_024
}
