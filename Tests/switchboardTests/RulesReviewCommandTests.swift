import ChatCore
import Foundation
import Storage
import Testing
import TestSupport

@Suite("rules review")
struct RulesReviewCommandTests {
    @Test("lists the misroutes of the server's database and exports them as cases that rules eval reads")
    func reviewAndExport() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("records.sqlite").path
        let database = try SQLiteDatabase(path: path)
        _ = try await StreamRecords.databaseSchema.prepare(database)
        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded())
        func record(_ id: String, level: String, stopReason: String, text: String?, minutesAgo: Int64 = 5) -> StreamRecord {
            StreamRecord(sessionId: id, finishedAt: now - minutesAgo * 60_000, level: level, route: "fast", provider: "anthropic",
                         model: "claude-haiku-4-5", durationMs: 4_000, firstTextMs: 300, iterations: 2, toolCalls: 2, inputTokens: 500,
                         outputTokens: 120, cacheReadTokens: 0, cacheWriteTokens: 0, costUSD: 0.002, outcome: "complete", errorCode: nil,
                         analysis: RecordedAnalysis(level: level, score: 0, matchedRules: []), stopReason: stopReason, queryText: text)
        }
        let records = StreamRecords(database: database)
        try await records.insert([
            record("limited", level: "simple", stopReason: "max_iterations", text: "compare the salaries of Anna and Ben"),
            record("told", level: "simple", stopReason: "end_turn", text: "chart the hiring trend"),
            record("fine", level: "simple", stopReason: "end_turn", text: "list the people"),
            record("textless", level: "simple", stopReason: "max_iterations", text: nil),
            record("old", level: "simple", stopReason: "max_iterations", text: "too old to look at", minutesAgo: 120),
        ])
        try await records.saveFeedback(StreamFeedback(rating: .down, expectedLevel: "complex", comment: nil), sessionId: "told", at: now)

        let export = directory.appendingPathComponent("review.yaml").path
        let review = try await CLI.runAsync(["rules", "review", "rules.yaml", "--database", path, "--since", "1h", "--export", export])
        #expect(review.status == 0, "\(review.stdout) \(review.stderr)")
        let lines = review.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "3 of 4 chats since 1h look misrouted", "\(review.stdout)")
        #expect(lines.contains { $0.contains("limited  simple → moderate?  [max_iterations]") }, "\(review.stdout)")
        #expect(lines.contains { $0.contains("told  simple → complex  [feedback]") }, "\(review.stdout)")
        #expect(!review.stdout.contains("fine") && !review.stdout.contains("too old"))
        #expect(lines.last == "wrote 2 cases to \(export) (1 flagged chats had no recorded text: serve with --record-queries to keep it)")

        let eval = try await CLI.runAsync(["rules", "eval", "rules.yaml", "--cases", export, "--json"])
        #expect(eval.status == 0, "\(eval.stdout) \(eval.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
        #expect(report["cases"] as? Int == 2, "\(eval.stdout.prefix(600))")
        // The shipped rules put the comparison on moderate and the chart on complex: both cases pass.
        #expect(report["correct"] as? Int == 2, "\(eval.stdout.prefix(600))")
    }
}
