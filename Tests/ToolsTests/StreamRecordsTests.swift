import ChatCore
import Foundation
import Storage
import Testing
@testable import Tools

private func record(_ number: Int, level: String? = "simple", outcome: String = "complete", firstText: Int? = 120) -> StreamRecord {
    StreamRecord(sessionId: "s-\(number)-\(UUID().uuidString)", finishedAt: 1_000_000 + Int64(number), level: level,
                 route: level == nil ? nil : "fast", provider: "local", model: "llama3.1:8b", durationMs: number * 1000,
                 firstTextMs: firstText, iterations: 2, toolCalls: 1, inputTokens: 600, outputTokens: 100, cacheReadTokens: 400,
                 cacheWriteTokens: 0, costUSD: 0.00047, outcome: outcome, errorCode: outcome == "error" ? "overloaded" : nil)
}

@Suite("Stream records", .serialized)
struct StreamRecordsTests {
    @Test("kept to the most recent `limit`; calibration reads the completed ones on a level, newest first", arguments: Backend.available)
    func boundedAndRead(backend: Backend) async throws {
        let database = try await backend.database
        let records = StreamRecords(database: database, limit: 4)
        try await records.insert([record(1), record(2), record(3)])
        try await records.insert([record(4, outcome: "error"), record(5, level: nil), record(6, firstText: nil)])
        #expect(try await records.count() == 4, "two oldest deleted")
        // 3 and 6 remain that completed on a level (4 failed, 5 had no level); 1 and 2 were deleted.
        let samples = try await records.samples(window: 100)
        #expect(samples.map(\.durationMs) == [6000, 3000])
        #expect(samples.map(\.firstTextMs) == [nil, 120])
        #expect(samples.allSatisfy { $0.level == "simple" && $0.route == "fast" })
        #expect(try await records.samples(window: 1).map(\.durationMs) == [6000])
        // Every column round-trips.
        let row = try #require(try await database.fetch("SELECT * FROM stream_records WHERE duration_ms = 4000", []).first)
        #expect(row["error_code"]?.text == "overloaded")
        #expect(row["cost_usd"]?.double == 0.00047)
        #expect(row["cache_read_tokens"]?.int == 400)
        #expect(row["finished_at"]?.int == 1_000_004)
        try await database.transaction([("DELETE FROM stream_records", [])])
    }

    @Test("the analysis, the owner, the stop reason and the text round-trip; feedback joins them, the last given counts",
          arguments: Backend.available)
    func reviewFields(backend: Backend) async throws {
        let database = try await backend.database
        let records = StreamRecords(database: database)
        var kept = record(7)
        kept.owner = "web"
        kept.analysis = RecordedAnalysis(level: "moderate", score: 2.5, matchedRules: ["compare", "charts"])
        kept.stopReason = "max_iterations"
        kept.queryText = "compare the teams"
        let bare = record(8)
        try await records.insert([kept, bare])
        #expect(try await records.owner(of: kept.sessionId) == (true, "web"))
        #expect(try await records.owner(of: bare.sessionId) == (true, nil))
        #expect(try await records.owner(of: "no-such-session") == (false, nil))
        try await records.saveFeedback(StreamFeedback(rating: .up, expectedLevel: nil, comment: nil), sessionId: kept.sessionId, at: 1)
        try await records.saveFeedback(StreamFeedback(rating: .down, expectedLevel: "complex", comment: "too slow"),
                                       sessionId: kept.sessionId, at: 2)
        let reviewed = try await records.reviewed(since: 0, limit: 1_000)
        let mine = try #require(reviewed.first { $0.sessionId == kept.sessionId })
        #expect(mine.analysedLevel == "moderate" && mine.score == 2.5 && mine.matchedRules == ["compare", "charts"])
        #expect(mine.stopReason == "max_iterations" && mine.queryText == "compare the teams")
        #expect(mine.feedback == StreamFeedback(rating: .down, expectedLevel: "complex", comment: "too slow"))
        let other = try #require(reviewed.first { $0.sessionId == bare.sessionId })
        #expect(other.feedback == nil && other.queryText == nil && other.matchedRules.isEmpty && other.analysedLevel == nil)
        #expect(try await records.reviewed(since: 1_000_008, limit: 1_000).allSatisfy { $0.finishedAt >= 1_000_008 })
        try await database.transaction([("DELETE FROM stream_feedback", []), ("DELETE FROM stream_records", [])])
    }

    @Test("a database from before the review keeps its records: the new columns are added as it opens")
    func oldTableMigrates() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("records-\(UUID().uuidString).sqlite").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let database = try SQLiteDatabase(path: path)
        try await database.transaction([("""
            CREATE TABLE stream_records (session_id TEXT PRIMARY KEY, finished_at BIGINT NOT NULL, level TEXT, route TEXT,
                provider TEXT NOT NULL, model TEXT NOT NULL, duration_ms INTEGER NOT NULL, first_text_ms INTEGER,
                iterations INTEGER NOT NULL, tool_calls INTEGER NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
                cache_read_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL, cost_usd DOUBLE PRECISION,
                outcome TEXT NOT NULL, error_code TEXT)
            """, []), ("""
            INSERT INTO stream_records VALUES ('old', 5, 'simple', 'fast', 'anthropic', 'm', 10, NULL, 1, 0, 1, 1, 0, 0, NULL,
                'complete', NULL)
            """, [])])
        _ = try await StreamRecords.databaseSchema.prepare(database)
        // Twice, as every start does.
        _ = try await StreamRecords.databaseSchema.prepare(database)
        let records = StreamRecords(database: database)
        var new = record(9)
        new.analysis = RecordedAnalysis(level: "simple", score: 0, matchedRules: [])
        try await records.insert([new])
        let reviewed = try await records.reviewed(since: 0, limit: 10)
        #expect(Set(reviewed.map(\.sessionId)) == ["old", new.sessionId])
        #expect(reviewed.first { $0.sessionId == "old" }?.analysedLevel == nil)
        #expect(reviewed.first { $0.sessionId == new.sessionId }?.analysedLevel == "simple")
    }
}
