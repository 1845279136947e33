import AnthropicMock
import AsyncHTTPClient
import ChatCore
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import TestSupport
@testable import Server

/// `GET /mcp/chat/stream/{id}` with `Last-Event-ID`, read to its end.
private func resume(port: Int, session: String, lastEventId: String?, key: String? = nil) async throws -> ReceivedStream {
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/mcp/chat/stream/\(session)")
    if let lastEventId { request.headers.add(name: "Last-Event-ID", value: lastEventId) }
    if let key { request.headers.add(name: "authorization", value: "Bearer \(key)") }
    return try await receiveStream(try await HTTPClient.shared.execute(request, timeout: .seconds(30)))
}

/// The model answers in four pieces, `pause` apart.
private func pacedAnswer(pause: Duration) -> MockAnthropic.Reply {
    .stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "one "), .pause(pause), SSE.text(0, "two "), .pause(pause),
             SSE.text(0, "three "), .pause(pause), SSE.text(0, "four"), SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop])
}

private let resumableBody = #"{"messages":[{"role":"user","content":"hi"}],"accumulated":false,"resumable":true}"#

@Suite("Resumable streams", .serialized, .timeLimit(.minutes(1)))
struct ResumeTests {
    @Test("a dropped connection does not stop the chat; Last-Event-ID replays exactly what came after, then the stream goes on live")
    func dropAndResume() async throws {
        try await MockAnthropic.run { mock in
            // 700 ms between pieces: the resume below must be reading before the last one, even on a busy machine.
            mock.enqueue(pacedAnswer(pause: .milliseconds(700)))
            let app = try await buildApplication(configuration: streamingConfiguration(mock))
            try await app.test(.live) { client in
                let port = try #require(client.port)
                // The client drops the connection after the first text.
                let first = try await streamChat(port: port, body: resumableBody) { $0.types.contains("text_chunk") }
                #expect(first.types == ["session_start", "iteration_start", "text_chunk"], "\(first.types)")
                let session = try #require(first.events("session_start").first?["sessionId"] as? String)
                let lastId = try #require(first.arrivals.last?.id)
                // The chat went on meanwhile: the upstream was not closed.
                try await Task.sleep(for: .milliseconds(400))
                #expect(mock.disconnects.isEmpty)

                let resumed = try await resume(port: port, session: session, lastEventId: lastId)
                #expect(resumed.status == 200)
                #expect(resumed.arrivals.map(\.id) == ["4", "5", "6", "7"], "the events after \(lastId), each once")
                #expect(resumed.types == ["text_chunk", "text_chunk", "text_chunk", "complete"])
                let text = (first.events("text_chunk") + resumed.events("text_chunk")).compactMap { $0["chunk"] as? String }.joined()
                #expect(text == "one two three four")
                // Live, not only replayed: the resumed connection was reading before the model sent its last piece.
                let sent = mock.sent
                #expect(sent.count >= 6)
                if sent.count >= 6 { #expect(resumed.arrivals.first!.at < sent[5], "resumed after the last text was sent") }
                // The upstream wrote its answer to the end (the chat completes at `message_stop`; the mock counts
                // its reply once its own last write returns, a moment later on a busy machine).
                #expect(await eventually { mock.finished == 1 })

                // Everything again from the start, for a client that lost it all (within the grace period).
                let again = try await resume(port: port, session: session, lastEventId: nil)
                #expect(again.arrivals.map(\.id) == (1...7).map(String.init))
            }
        }
    }

    @Test("nobody comes back within the grace: the chat stops and its upstream request closes; then the session is gone (404)")
    func graceRunsOut() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(pacedAnswer(pause: .seconds(20)))
            var config = streamingConfiguration(mock)
            config.resume.grace = .milliseconds(500)
            let app = try await buildApplication(configuration: config)
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let first = try await streamChat(port: port, body: resumableBody) { $0.types.contains("text_chunk") }
                let session = try #require(first.events("session_start").first?["sessionId"] as? String)
                #expect(await eventually(within: .seconds(5)) { mock.disconnects.count == 1 })
                // Stopped, it stays readable for one more grace period (a resume would restart that wait), then goes:
                // four grace periods after the stop leave a busy machine room.
                try await Task.sleep(for: .seconds(2))
                let gone = try await resume(port: port, session: session, lastEventId: "3")
                #expect(gone.status == 404)
                #expect((gone.body?["error"] as? [String: Any])?["code"] as? String == "session_not_found")
            }
        }
    }

    @Test("DELETE stops a resumable chat at once (its upstream request closes); later it is not found")
    func deleteStops() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(pacedAnswer(pause: .seconds(20)))
            let app = try await buildApplication(configuration: streamingConfiguration(mock))
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let first = try await streamChat(port: port, body: resumableBody) { $0.types.contains("text_chunk") }
                let session = try #require(first.events("session_start").first?["sessionId"] as? String)
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/mcp/chat/stream/\(session)")
                request.method = .DELETE
                #expect(try await HTTPClient.shared.execute(request, timeout: .seconds(10)).status == .noContent)
                #expect(await eventually(within: .seconds(2)) { mock.disconnects.count == 1 })
                var unknown = HTTPClientRequest(url: "http://127.0.0.1:\(port)/mcp/chat/stream/no-such-session")
                unknown.method = .DELETE
                #expect(try await HTTPClient.shared.execute(unknown, timeout: .seconds(10)).status == .notFound)
            }
        }
    }

    @Test("only the key that opened a session may resume it; a bad Last-Event-ID is a 400 naming it")
    func owner() async throws {
        let (alice, bob) = ("sb_alice-0123456789abcdef0123456789", "sb_bob-0123456789abcdef0123456789ab")
        try await MockAnthropic.run { mock in
            mock.enqueue(pacedAnswer(pause: .milliseconds(200)))
            var config = streamingConfiguration(mock)
            config.apiKeys = [alice, bob]
            let app = try await buildApplication(configuration: config)
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let first = try await streamChat(port: port, body: resumableBody, headers: [("authorization", "Bearer \(alice)")]) {
                    $0.types.contains("text_chunk")
                }
                let session = try #require(first.events("session_start").first?["sessionId"] as? String)
                #expect(try await resume(port: port, session: session, lastEventId: "3", key: bob).status == 404)
                #expect(try await resume(port: port, session: session, lastEventId: "3").status == 401)
                let bad = try await resume(port: port, session: session, lastEventId: "three", key: alice)
                #expect(bad.status == 400)
                #expect((bad.body?["error"] as? [String: Any])?["field"] as? String == "Last-Event-ID")
                let mine = try await resume(port: port, session: session, lastEventId: "3", key: alice)
                #expect(mine.types.last == "complete", "\(mine.types)")
            }
        }
    }

    @Test("a session whose events pass its buffer, or the server-wide one, ends with resume_buffer_full; a chat without resumable is stopped by a hang-up as before")
    func bufferFull() async throws {
        try await MockAnthropic.run { mock in
            let pieces = (1...100).map { SSE.text(0, String(repeating: "x", count: 40) + "\($0)") }
            let long = MockAnthropic.Reply.stream([SSE.messageStart(), SSE.textStart(0)] + pieces
                                                  + [SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop])
            mock.enqueue(long, long, pacedAnswer(pause: .seconds(20)))
            var config = streamingConfiguration(mock)
            config.resume.sessionBytes = 4096
            let app = try await buildApplication(configuration: config)
            var sharedConfig = streamingConfiguration(mock)
            sharedConfig.resume.totalBytes = 4096
            let sharedApp = try await buildApplication(configuration: sharedConfig)
            try await sharedApp.test(.live) { sharedClient in
            let sharedPort = try #require(sharedClient.port)
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let full = try await streamChat(port: port, body: resumableBody)
                #expect(full.types.last == "error", "\(full.types)")
                let error = try #require(full.events("error").last)
                #expect(error["code"] as? String == "resume_buffer_full")
                #expect(error["retryable"] as? Bool == true)
                #expect(full.events("text_chunk").count < 100)

                // The server-wide budget bounds the sessions together, whatever each may hold.
                let shared = try await streamChat(port: sharedPort, body: resumableBody)
                #expect(shared.events("error").last?["code"] as? String == "resume_buffer_full", "\(shared.types)")

                let plain = try await streamChat(port: port, body: chatJSON("hi", extra: #","accumulated":false"#)) {
                    $0.types.contains("text_chunk")
                }
                #expect(plain.types.last == "text_chunk")
                #expect(await eventually(within: .seconds(5)) { mock.disconnects.count == 1 }, "hang-up still cancels at once")
            }
            }
        }
    }

    @Test("a resumable chat with accumulated keeps a buffer that grows with the answer, not its square: a long answer completes, every accumulated is the text so far, after a resume too")
    func accumulatedStaysLinear() async throws {
        try await MockAnthropic.run { mock in
            // 600 chunks of 40 bytes: with each event's accumulated kept, 7 MB, far past the 1 MiB a session may keep.
            let chunks = (1...600).map { String(repeating: "ab\"é ", count: 8) + "\($0)" }
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0)] + chunks.map { SSE.text(0, $0) }
                                 + [SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]))
            let app = try await buildApplication(configuration: streamingConfiguration(mock))
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let whole = try await streamChat(port: port, body: #"{"messages":[{"role":"user","content":"hi"}],"resumable":true}"#)
                #expect(whole.types.last == "complete", "\(whole.types.suffix(3))")
                let texts = whole.events("text_chunk")
                #expect(texts.count == chunks.count)
                var soFar = ""
                for (event, chunk) in zip(texts, chunks) {
                    soFar += chunk
                    #expect(event["chunk"] as? String == chunk)
                    if event["accumulated"] as? String != soFar {
                        Issue.record("accumulated is not the text so far at \(event["id"] ?? "?")")
                        break
                    }
                }
                // Picked up again halfway (the finished session stays readable for its grace).
                let session = try #require(whole.events("session_start").first?["sessionId"] as? String)
                let middle = try #require(whole.arrivals.first { ($0.json["chunk"] as? String) == chunks[299] }?.id)
                let resumed = try await resume(port: port, session: session, lastEventId: middle)
                let first = try #require(resumed.events("text_chunk").first)
                #expect(first["chunk"] as? String == chunks[300])
                #expect(first["accumulated"] as? String == chunks[...300].joined())
            }
        }
    }

    @Test("one key cannot fill the server-wide resume buffer: another key's resumable chat still runs")
    func perKeyShare() async throws {
        try await MockAnthropic.run { mock in
            let pieces = (1...100).map { SSE.text(0, String(repeating: "x", count: 40) + "\($0)") }
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0)] + pieces + [SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]),
                         pacedAnswer(pause: .milliseconds(10)))
            var config = streamingConfiguration(mock)
            config.apiKeys = ["sb_resume-key-alice-0123456789", "sb_resume-key-bob-0123456789"]
            config.resume.totalBytes = 8192
            config.resume.keyBytes = 4096
            let app = try await buildApplication(configuration: config)
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let alice = try await streamChat(port: port, body: resumableBody, headers: [("authorization", "Bearer sb_resume-key-alice-0123456789")])
                #expect(alice.events("error").last?["code"] as? String == "resume_buffer_full", "\(alice.types.suffix(2))")
                // Alice's stopped session is still kept (its grace), holding her share; Bob's chat fits in the rest.
                let bob = try await streamChat(port: port, body: resumableBody, headers: [("authorization", "Bearer sb_resume-key-bob-0123456789")])
                #expect(bob.types.last == "complete", "\(bob.types)")
            }
        }
    }
}
