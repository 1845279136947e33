import ChatCore
import Foundation
import Logging
import ServiceLifecycle
@testable import Storage
import Synchronization
import Testing
import TestSupport

@Suite("Database location")
struct DatabaseLocationTests {
    @Test("a spec names SQLite, memory or PostgreSQL", arguments: [
        (":memory:", DatabaseLocation.memory),
        ("data/hr.sqlite", .sqlite(path: "data/hr.sqlite")),
        ("postgres://u:p@db:5432/hr", .postgres(url: "postgres://u:p@db:5432/hr")),
        ("postgresql://db/hr", .postgres(url: "postgresql://db/hr")),
    ])
    func parses(spec: String, location: DatabaseLocation) {
        #expect(DatabaseLocation(spec) == location)
    }

    @Test("its description never shows a password")
    func redacts() {
        #expect(DatabaseLocation("postgres://hr:s3cret@db:5432/hr?sslmode=require").description
                == "postgres://hr@db:5432/hr?sslmode=require")
        #expect(DatabaseLocation("data/hr.sqlite").description == "data/hr.sqlite")
    }

    @Test("PostgreSQL off loopback requires TLS unless the URL says otherwise", arguments: [
        ("postgres://u:p@db.internal:5432/hr", "require"),
        ("postgres://u:p@10.0.0.5/hr", "require"),
        ("postgres://u:p@127.0.0.1:55432/hr", "prefer"),
        ("postgres://u:p@localhost/hr", "prefer"),
        ("postgres://u:p@[::1]:5432/hr", "prefer"),
        ("postgres://u:p@127.corp.example/hr", "require"),
        ("postgres://u:p@db.internal/hr?sslmode=disable", "disable"),
        ("postgres://u:p@127.0.0.1/hr?sslmode=require", "require"),
    ])
    func tlsByHost(url: String, mode: String) throws {
        #expect(PostgresDatabase.sslMode(try #require(URLComponents(string: url))) == mode)
    }
}

@Suite("Readiness gate")
struct ReadinessGateTests {
    @Test("a query waiting for a database that is not ready honours cancellation and the tool timeout")
    func waitsAreCancellable() async throws {
        let gate = ReadinessGate()
        let database = GatedDatabase(base: try SQLiteDatabase(), gate: gate)
        let waiting = Task { try await database.fetch("SELECT 1 AS one", []) }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { _ = try await waiting.value }
        #expect(try await withTimeout(.milliseconds(20)) { try await database.fetch("SELECT 1 AS one", []) } == nil)
        gate.open()
        #expect(try await database.fetch("SELECT 1 AS one", []).first?["one"]?.int == 1)
    }

    @Test("a database that will not be ready fails its waiting queries at once, and every later one")
    func failedPreparation() async throws {
        struct Broken: Error {}
        let gate = ReadinessGate()
        let database = GatedDatabase(base: try SQLiteDatabase(), gate: gate)
        let waiting = Task { try await database.fetch("SELECT 1 AS one", []) }
        try await Task.sleep(for: .milliseconds(20))
        gate.fail(Broken())
        await #expect(throws: Broken.self) { _ = try await waiting.value }
        await #expect(throws: Broken.self) { try await database.transaction([("SELECT 1", [])]) }
    }
}


@Suite("Prepared database")
struct PreparedDatabaseTests {
    @Test("a SQLite file opens with its schemas prepared in order, and opens again without preparing twice")
    func preparesOnce() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("storage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let location = DatabaseLocation(directory.appendingPathComponent("s.sqlite").path)
        let order = Mutex<[String]>([])
        let notes = DatabaseSchema(name: "notes") { database in
            order.withLock { $0.append("notes") }
            try await database.transaction([("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)", [])])
            let count = try await database.fetch("SELECT COUNT(*) AS n FROM notes", []).first?["n"]?.int ?? 0
            guard count == 0 else { return nil }
            try await database.transaction([("INSERT INTO notes (body) VALUES (?)", [.text("first")])])
            return "seeded"
        }
        let records = DatabaseSchema(name: "records") { database in
            order.withLock { $0.append("records") }
            return try await StreamRecords.databaseSchema.prepare(database)
        }
        let first = try await PreparedDatabase.open(location, schemas: [notes, records], logger: Logger(label: "test"))
        #expect(first.service == nil)
        #expect(order.withLock { $0 } == ["notes", "records"])
        #expect(try await StreamRecords(database: first.database).samples(window: 10).isEmpty)
        let again = try await PreparedDatabase.open(location, schemas: [notes, records], logger: Logger(label: "test"))
        #expect(try await again.database.fetch("SELECT body FROM notes", []).map { $0["body"]?.text } == ["first"])
    }

    @Test("a URL that is not PostgreSQL's is refused by name, without its password")
    func badURL() async throws {
        let error = await #expect(throws: DatabaseError.self) {
            _ = try await PreparedDatabase.open(.postgres(url: "postgres://user:s3cret@/hr"), schemas: [], logger: Logger(label: "test"))
        }
        #expect(error?.description.contains("Not a PostgreSQL URL") == true)
        #expect(error?.description.contains("s3cret") == false)
    }
}

@Suite("PostgreSQL queries and deadlines",
       .enabled(if: ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_POSTGRES_URL"] != nil, "needs SWITCHBOARD_TEST_POSTGRES_URL"))
struct PostgresDeadlineTests {
    @Test("a query past its deadline ends when its caller gives up (its connection closes), and the pool serves the next")
    func cancelledQueryEnds() async throws {
        let url = try #require(ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_POSTGRES_URL"])
        let database = try PostgresDatabase(url: url)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await database.run() }
            _ = try await database.fetch("SELECT 1 AS one", [])
            let started = ContinuousClock.now
            // The driver's in-flight query would wait the server's 30 s out; withTimeout returns once it has ended.
            let answer = try await withTimeout(.milliseconds(200)) { try await database.fetch("SELECT pg_sleep(30)", []) }
            #expect(answer == nil)
            #expect(ContinuousClock.now - started < .seconds(10), "the query ended with its connection, not after 30 s")
            // At once, on the same pool: not the closed connection.
            #expect(try await database.fetch("SELECT 2 AS two", []).first?["two"]?.int == 2)
            group.cancelAll()
        }
    }

    @Test("a server stopping while its database is prepared stops at once: the statement in flight ends, waiting queries fail")
    func stopWhilePreparing() async throws {
        let url = try #require(ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_POSTGRES_URL"])
        let started = Mutex(false)
        // A preparation caught in the middle of a transaction's statement, as a slow seeding is.
        let slow = DatabaseSchema(name: "slow") { database in
            started.withLock { $0 = true }
            try await database.transaction([("SELECT pg_sleep(30)", [])])
            return nil
        }
        let opened = try await PreparedDatabase.open(.postgres(url: url), schemas: [slow], logger: Logger(label: "test"))
        let service = try #require(opened.service)
        let group = ServiceGroup(services: [service], logger: Logger(label: "test"))
        let begun = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try? await group.run() }
            tasks.addTask {
                await #expect(throws: (any Error).self, "a query waiting for the database fails once preparing stopped") {
                    _ = try await opened.database.fetch("SELECT 1 AS one", [])
                }
            }
            #expect(await eventually(within: .seconds(10)) { started.withLock { $0 } })
            try await Task.sleep(for: .milliseconds(200))
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(ContinuousClock.now - begun < .seconds(20), "stopped with its statement, not after the 30 s sleep")
    }

    @Test("the preparation lock is waited for within its bound: a second holder gives up with PostgreSQL's lock timeout")
    func lockWaitBounded() async throws {
        let url = try #require(ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_POSTGRES_URL"])
        let database = try PostgresDatabase(url: url)
        let lock: Int64 = 727_199
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await database.run() }
            let release = AsyncStream<Void>.makeStream()
            let holding = AsyncStream<Void>.makeStream()
            group.addTask {
                try await database.exclusively(lock: lock) { _ in
                    holding.continuation.yield()
                    for await _ in release.stream { break }
                }
            }
            for await _ in holding.stream { break }
            let error = await #expect(throws: (any Error).self) {
                try await database.exclusively(lock: lock, lockWait: .milliseconds(300)) { _ in }
            }
            #expect(String(reflecting: error).contains("lock timeout") || String(reflecting: error).contains("55P03"), "\(String(reflecting: error))")
            release.continuation.yield()
            release.continuation.finish()
            // Taken again, once the holder lets go.
            try await database.exclusively(lock: lock, lockWait: .seconds(5)) { _ in }
            group.cancelAll()
        }
    }
}

