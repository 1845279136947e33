import ChatCore
import Foundation
import Logging
import Storage
import Synchronization
import Testing
import TestSupport
@testable import Server

/// A SQLite database whose transactions wait until the test lets them go: a database that is slow to write.
private final class HeldWrites: SQLDatabase {
    let base: SQLiteDatabase
    private let held = Mutex<[CheckedContinuation<Void, Never>]>([])
    private let holding = Atomic(true)
    private let started = Atomic(0)

    init() throws { base = try SQLiteDatabase() }

    var description: String { base.description }
    var writesStarted: Int { started.load(ordering: .acquiring) }

    func fetch(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        try await base.fetch(sql, arguments)
    }

    func transaction(_ statements: [(sql: String, arguments: [SQLValue])]) async throws {
        started.add(1, ordering: .releasing)
        if holding.load(ordering: .acquiring) {
            await withCheckedContinuation { continuation in held.withLock { $0.append(continuation) } }
        }
        try await base.transaction(statements)
    }

    /// Lets every held write go, and the later ones through.
    func release() {
        holding.store(false, ordering: .releasing)
        for continuation in held.withLock({ held in defer { held = [] }; return held }) { continuation.resume() }
    }
}

private final class Flag: Sendable {
    let value = Atomic(false)
}

private func record(_ sessionId: String) -> StreamRecord {
    StreamRecord(sessionId: sessionId, finishedAt: 1_000_000, level: "simple", route: "fast", provider: "anthropic", model: "m",
                 durationMs: 10, firstTextMs: 5, iterations: 1, toolCalls: 0, inputTokens: 1, outputTokens: 1, cacheReadTokens: 0,
                 cacheWriteTokens: 0, costUSD: nil, outcome: "complete", errorCode: nil, owner: "web")
}

@Suite("Stream recorder")
struct StreamRecorderTests {
    @Test("a flush returns once every record given before it is stored, even while another flush is writing it")
    func flushWaitsForTheWriteInFlight() async throws {
        let database = try HeldWrites()
        _ = try await StreamRecords.databaseSchema.prepare(database.base)
        let recorder = StreamRecorder(records: StreamRecords(database: database), metrics: ServerMetrics(), logger: Logger(label: "test"))
        recorder.record(record("first"))
        let returned = Flag()
        try await withThrowingTaskGroup(of: Void.self) { group in
            // The periodic flush has taken the record and is writing it.
            group.addTask { await recorder.flush() }
            #expect(await eventually(within: .seconds(5)) { database.writesStarted == 1 })
            // The feedback endpoint's flush: nothing is pending any more, yet the record is not stored.
            group.addTask {
                await recorder.flush()
                returned.value.store(true, ordering: .releasing)
            }
            try await Task.sleep(for: .milliseconds(100))
            let early = returned.value.load(ordering: .acquiring)
            #expect(!early, "returned before the record in flight was stored")
            database.release()
            try await group.waitForAll()
        }
        let kept = try await recorder.records.owner(of: "first")
        #expect(kept.kept && kept.owner == "web")
    }
}
