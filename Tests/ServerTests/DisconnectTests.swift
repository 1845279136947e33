import AnthropicMock
import ChatCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import TestSupport
import Testing
@testable import Server

/// A client that hangs up: in every phase, the upstream request and running tools stop within 100 ms.
@Suite("Client disconnect", .serialized, .timeLimit(.minutes(3)), .cpuQuiet)
struct DisconnectTests {
    /// Streams until `hangUpAfter` returns true, hangs up, and returns when it did.
    private func hangUp(port: Int, after hangUpAfter: @escaping @Sendable (ReceivedStream) -> Bool) async throws -> ContinuousClock.Instant {
        _ = try await streamChat(port: port, body: chatJSON("hi"), stopAfter: hangUpAfter)
        return ContinuousClock().now
    }

    private let metrics = ServerMetrics()

    private func withServer(_ mock: MockAnthropic, tools: [any Tool] = [], _ body: @Sendable (Int) async throws -> Void) async throws {
        let app = try await buildApplication(configuration: streamingConfiguration(mock, keepalive: .milliseconds(50)), tools: tools,
                                             metrics: metrics)
        try await app.test(.live) { client in try await body(try #require(client.port)) }
    }

    /// Whether the server has finished the stream the client left: its task has ended, so it can send nothing more.
    private func streamEnded() -> Bool {
        String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self).contains(#"switchboard_streams_total{outcome="client_gone"} 1"#)
    }

    @Test("while waiting for the first token")
    func waitingForFirstToken() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([.pause(.seconds(10))] + SSE.textAnswer(["never"])))
            try await withServer(mock) { port in
                let hungUp = try await hangUp(port: port) { $0.types.contains("iteration_start") && !$0.keepalives.isEmpty }
                await eventually(within: .seconds(2)) { !mock.disconnects.isEmpty }
                let disconnect = try #require(mock.disconnects.first)
                #expect(disconnect - hungUp < .milliseconds(100))
            }
        }
    }

    @Test("in the middle of the text")
    func midText() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Hello"), .pause(.seconds(10)), SSE.messageStop]))
            try await withServer(mock) { port in
                let hungUp = try await hangUp(port: port) { $0.types.contains("text_chunk") }
                await eventually(within: .seconds(2)) { !mock.disconnects.isEmpty }
                let disconnect = try #require(mock.disconnects.first)
                #expect(disconnect - hungUp < .milliseconds(100))
                #expect(mock.finished == 0)
            }
        }
    }

    @Test("while tools run")
    func duringTools() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.toolTurn(text: nil, tools: [(id: "t1", name: "slow", fragments: ["{}"]),
                                                                  (id: "t2", name: "slower", fragments: ["{}"])])),
                         .stream(SSE.textAnswer(["never"])))
            let slow = ProbeTool(name: "slow", delay: .seconds(10))
            let slower = ProbeTool(name: "slower", delay: .seconds(20))
            try await withServer(mock, tools: [slow, slower]) { port in
                let hungUp = try await hangUp(port: port) { $0.events("tool_progress").count == 2 }
                await eventually(within: .seconds(2)) { slow.cancelled.count == 1 && slower.cancelled.count == 1 }
                let cancelled = try #require((slow.cancelled + slower.cancelled).max())
                #expect(cancelled - hungUp < .milliseconds(100))
                #expect(await eventually(within: .seconds(5)) { streamEnded() })
                #expect(mock.received.count == 1, "no follow-up request after the client left")
            }
        }
    }

    @Test("during a retry's backoff")
    func duringBackoff() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.status(429, headers: ["retry-after-ms": "800"], body: SSE.errorBody("rate_limit_error", "wait")),
                         .stream(SSE.textAnswer(["too late"])))
            try await withServer(mock) { port in
                let hungUp = try await hangUp(port: port) { _ in mock.received.count == 1 }
                #expect(await eventually(within: .seconds(5)) { streamEnded() })
                // Ended during the 800 ms backoff, not after it: the retry was cancelled with the client.
                #expect(ContinuousClock.now - hungUp < .milliseconds(800))
                #expect(mock.received.count == 1, "the retry was cancelled with the client")
            }
        }
    }
}
