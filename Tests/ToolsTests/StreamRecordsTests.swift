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

@Suite("Stream records")
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
}
