import AnthropicMock
import AsyncHTTPClient
import NIOHTTP1
import ChatCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TestSupport
@testable import Server

/// `simple` streams on `fast`, whose one iteration a tool call uses up; `complex` (a chart) is advised.
private let reviewRules = rulesFile(levels: twoLevels(), routes: twoRoutes(maxIterations: 1), rules: """
  - { id: charts, weight: 5, when: { any_keywords: [chart] } }
""")

/// Where the server keeps its records: SQLite in memory, or PostgreSQL (a database of this suite's own).
enum RecordsBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    static var available: [RecordsBackend] { reviewPostgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }
    var testDescription: String { rawValue }
}

private let reviewPostgresURL = ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_POSTGRES_URL"]?
    .replacingOccurrences(of: "/switchboard_test?", with: "/switchboard_test_review?")

private func withReviewServer(_ mock: MockAnthropic, recordQueries: Bool, tools: [any Tool], backend: RecordsBackend = .sqlite,
                              _ body: @Sendable (Int) async throws -> Void) async throws {
    try await withKeyedServer(mock, rules: reviewRules, tools: tools, configure: { config in
        config.recordQueries = recordQueries
        if backend == .postgres, let url = reviewPostgresURL { config.database = .postgres(url: url) }
    }, body)
}

private func post(_ port: Int, _ path: String, key: String, body: String? = nil, method: HTTPMethod = .POST) async throws
    -> SecurityTests.Answer
{
    try await SecurityTests().request(port, path, method: method, key: key, body: body)
}

@Suite("Feedback and the review of misroutes", .serialized, .timeLimit(.minutes(1)))
struct FeedbackReviewTests {
    @Test("feedback: the stream's own key gives it (204); another key, an unknown session: 404; a bad field: 400 naming it",
          arguments: RecordsBackend.available)
    func feedback(backend: RecordsBackend) async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["Three people."])))
            try await withReviewServer(mock, recordQueries: false, tools: [], backend: backend) { port in
                // As a load balancer would: no chat before the instance says it is ready (its database prepared).
                #expect(await eventually(within: .seconds(30), every: .milliseconds(100)) { (try? await post(port, "/ready", key: webKey, method: .GET).status) == 200 })
                let stream = try await streamChat(port: port, body: chatJSON("list the people"), path: "/mcp/chat",
                                                  headers: [("authorization", "Bearer \(webKey)")])
                let session = try #require(stream.events("session_start").first?["sessionId"] as? String)
                let good = #"{"sessionId":"\#(session)","rating":"down","expectedLevel":"complex","comment":"needed a chart"}"#
                #expect(try await post(port, "/mcp/chat/feedback", key: webKey, body: good).status == 204)
                let stranger = try await post(port, "/mcp/chat/feedback", key: fastKey, body: good)
                #expect((stranger.status, stranger.code) == (404, "session_not_found"))
                let unknown = try await post(port, "/mcp/chat/feedback", key: webKey, body: #"{"sessionId":"nope","rating":"up"}"#)
                #expect((unknown.status, unknown.code) == (404, "session_not_found"))
                for (body, field) in [(#"{"sessionId":"\#(session)","rating":"meh"}"#, "rating"),
                                      (#"{"sessionId":"\#(session)","rating":"up","expectedLevel":"huge"}"#, "expectedLevel"),
                                      (#"{"rating":"up"}"#, "sessionId"),
                                      (#"{"sessionId":"\#(session)","rating":"up","comment":"\#(String(repeating: "x", count: 1_001))"}"#, "comment")] {
                    let refused = try await post(port, "/mcp/chat/feedback", key: webKey, body: body)
                    #expect(refused.status == 400 && (refused.json["error"] as? [String: Any])?["field"] as? String == field, "\(body)")
                }
                // The review names the chat the client marked down, with the level it asked for.
                let review = try await post(port, "/rules/review", key: adminKey, method: .GET)
                let flagged = try #require(review.json["flagged"] as? [[String: Any]], "\(review.json)")
                let entry = try #require(flagged.first { $0["sessionId"] as? String == session })
                #expect(entry["signals"] as? [String] == ["feedback"] && entry["suggestedLevel"] as? String == "complex")
                #expect(entry["guessed"] as? Bool == false)
                #expect((entry["feedback"] as? [String: Any])?["rating"] as? String == "down")
                #expect((entry["feedback"] as? [String: Any])?["comment"] is NSNull, "a comment is the user's words: not kept without --record-queries")
                #expect(entry["text"] is NSNull, "no text without --record-queries")
                #expect(try await post(port, "/rules/review", key: webKey, method: .GET).status == 403)
            }
        }
    }

    @Test("a chat that used up its route's iterations with the model still asking for tools is flagged; an ordinary one is not; the text is kept with --record-queries")
    func maxIterations() async throws {
        try await MockAnthropic.run { mock in
            let probe = ProbeTool(name: "route_probe")
            mock.enqueue(.stream(SSE.toolTurn(text: nil, tools: [(id: "toolu_1", name: "route_probe", fragments: ["{}"])])),
                         .stream(SSE.textAnswer(["Done."])))
            try await withReviewServer(mock, recordQueries: true, tools: [probe]) { port in
                let auth = [("authorization", "Bearer \(webKey)")]
                let limited = try await streamChat(port: port, body: chatJSON("list the people by team"), path: "/mcp/chat", headers: auth)
                #expect(limited.events("complete").first?["stopReason"] as? String == "max_iterations", "\(limited.types)")
                let ordinary = try await streamChat(port: port, body: chatJSON("who is on leave"), headers: auth)
                #expect(ordinary.events("complete").first?["stopReason"] as? String == "end_turn", "\(ordinary.types)")
                let limitedId = limited.events("session_start").first?["sessionId"] as? String
                let review = try await post(port, "/rules/review?since=1h", key: adminKey, method: .GET)
                let flagged = try #require(review.json["flagged"] as? [[String: Any]], "\(review.json)")
                #expect(flagged.map { $0["sessionId"] as? String } == [limitedId], "\(flagged)")
                let entry = try #require(flagged.first)
                #expect(entry["signals"] as? [String] == ["max_iterations"] && entry["suggestedLevel"] as? String == "complex")
                #expect(entry["text"] as? String == "list the people by team")
                #expect(entry["level"] as? String == "simple" && entry["route"] as? String == "fast")
                // With --record-queries a feedback's comment is kept beside the text.
                let rated = #"{"sessionId":"\#(limitedId ?? "")","rating":"down","comment":"needed a chart"}"#
                #expect(try await post(port, "/mcp/chat/feedback", key: webKey, body: rated).status == 204)
                let again = try await post(port, "/rules/review?since=1h", key: adminKey, method: .GET)
                let commented = (again.json["flagged"] as? [[String: Any]])?.first { $0["sessionId"] as? String == limitedId }
                #expect((commented?["feedback"] as? [String: Any])?["comment"] as? String == "needed a chart", "\(again.json)")
                #expect(review.json["looked"] as? Int == 2)
                let bad = try await post(port, "/rules/review?since=yesterday", key: adminKey, method: .GET)
                #expect(bad.status == 400 && (bad.json["error"] as? [String: Any])?["field"] as? String == "since")
            }
        }
    }
}
