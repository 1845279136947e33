import AnthropicMock
import AsyncHTTPClient
import ChatCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TestSupport
@testable import Server

/// The live rules: a chart is complex (advised); everything else simple (streams on fast).
private let liveRules = rulesFile(levels: twoLevels(), routes: twoRoutes(), rules: """
  - { id: charts, weight: 5, when: { any_keywords: [chart] } }
""")

/// A candidate without the charts rule, and one where "people" is complex.
private let noCharts = rulesFile(levels: twoLevels(), routes: twoRoutes(), rules: """
  - { id: exports, weight: 5, when: { any_keywords: [export] } }
""")
private let peopleAreComplex = rulesFile(levels: twoLevels(), routes: twoRoutes(), rules: """
  - { id: charts, weight: 5, when: { any_keywords: [chart] } }
  - { id: people, weight: 5, when: { any_keywords: [people] } }
""")

@Suite("Shadow rules", .serialized, .timeLimit(.minutes(1)))
struct ShadowRulesTests {
    @Test("a candidate is analysed beside the live rules on every chat and routes nothing; the report counts what it would change, with the streams' cost and time; reloading it starts a new report; an invalid one is refused and the last good one kept")
    func shadowReport() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.textAnswer(["Three people."])), .stream(SSE.textAnswer(["Two people."])))
            let rules = try TemporaryRules(liveRules)
            defer { rules.remove() }
            let candidate = try TemporaryRules(noCharts)
            defer { candidate.remove() }
            var config = streamingConfiguration(mock)
            config.rulesPath = rules.path
            config.shadowRulesPath = candidate.path
            config.recordQueries = true
            let app = try await buildApplication(configuration: config)
            try await app.test(.live) { client in
                let port = try #require(client.port)
                func report() async throws -> [String: Any] {
                    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/rules/shadow"),
                                                                       timeout: .seconds(10))
                    return try json(try await response.body.collect(upTo: 1 << 20))
                }
                // Advised live (a chart), simple in the candidate: the live answer is still advice.
                let advised = try await streamChat(port: port, body: chatJSON("make a chart of the salaries"), path: "/mcp/chat")
                #expect(advised.body?["action"] as? String == "advise")
                // The same in both; the preflight is not a chat and is not counted.
                _ = try await streamChat(port: port, body: chatJSON("list the people"), path: "/mcp/chat")
                _ = try await analyze(port: port, chatJSON("another chart"))
                var shadow = try await report()
                #expect(shadow["analysed"] as? Int == 2, "\(shadow)")
                #expect(shadow["changedLevel"] as? Int == 1 && shadow["changedRoute"] as? Int == 1)
                let change = try #require((shadow["changes"] as? [[String: Any]])?.first)
                #expect((change["from"] as? [String: Any])?["level"] as? String == "complex")
                #expect((change["to"] as? [String: Any])?["route"] as? String == "fast")
                #expect(change["chats"] as? Int == 1 && change["streams"] as? Int == 0, "advice has no stream")

                // A new candidate: the report starts again, and a streamed chat it would move is booked with its cost.
                try candidate.write(peopleAreComplex)
                #expect(await eventually(within: .seconds(5)) { ((try? await report())?["reloads"] as? Int) == 1 })
                shadow = try await report()
                #expect(shadow["analysed"] as? Int == 0 && (shadow["changes"] as? [Any])?.isEmpty == true, "\(shadow)")
                let streamed = try await streamChat(port: port, body: chatJSON("list the people"), path: "/mcp/chat")
                #expect(streamed.types.last == "complete", "the live rules streamed it: \(streamed.types)")
                let session = streamed.events("session_start").first?["sessionId"] as? String
                shadow = try await report()
                let moved = try #require((shadow["changes"] as? [[String: Any]])?.first, "\(shadow)")
                #expect((moved["from"] as? [String: Any])?["level"] as? String == "simple")
                #expect((moved["to"] as? [String: Any])?["level"] as? String == "complex")
                #expect(moved["streams"] as? Int == 1 && moved["sessionIds"] as? [String] == [session].compactMap { $0 })
                #expect(moved["texts"] as? [String] == ["list the people"])
                #expect((moved["durationMs"] as? Int).map { $0 >= 0 } == true)

                // An invalid candidate is refused, with its diagnostics; the last good one keeps being compared.
                try candidate.write("version: 1\nlevels: [")
                #expect(await eventually(within: .seconds(5)) { ((try? await report())?["lastReloadError"] as? [String: Any]) != nil })
                shadow = try await report()
                #expect(shadow["reloads"] as? Int == 1 && shadow["analysed"] as? Int == 1, "\(shadow)")
                #expect(mock.received.count == 2 || mock.received.count == 1)
            }
        }
    }

    @Test("an invalid candidate at start refuses the start, naming the problem; without one, /rules/shadow says how to get one")
    func startup() async throws {
        let candidate = try TemporaryRules("version: 1\nlevels: [")
        defer { candidate.remove() }
        var config = configuration(rules: nil)
        config.shadowRulesPath = candidate.path
        await #expect(throws: StartupError.self) { _ = try await buildApplication(configuration: config) }
        let app = try await buildApplication(configuration: configuration(rules: nil))
        try await app.test(.router) { client in
            try await client.execute(uri: "/rules/shadow", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(String(buffer: response.body).contains("--shadow-rules"))
            }
        }
    }
}
