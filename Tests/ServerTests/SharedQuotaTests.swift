import AnthropicMock
import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Storage
import Testing
import TestSupport
import Tools
@testable import Server

private let postgresURL = clusterPostgresURL

/// A PostgreSQL pool on the test database with the quota schema, for `body`.
private func withQuotaDatabase(_ body: @Sendable (PostgresDatabase) async throws -> Void) async throws {
    let database = try PostgresDatabase(url: try #require(postgresURL))
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await database.run() }
        defer { group.cancelAll() }
        _ = try await PostgresQuotaStore.databaseSchema.prepare(database)
        try await body(database)
    }
}

private func store(_ database: any SQLDatabase, _ instance: String, lease: Duration = .seconds(1)) -> PostgresQuotaStore {
    var settings = PostgresQuotaStore.Settings()
    settings.lease = lease
    settings.flushInterval = .milliseconds(50)
    return PostgresQuotaStore(database: database, instance: instance, settings: settings, logger: Logger(label: "test"))
}

/// A key id no other run shares (the tables outlive the tests).
private func freshKey(_ name: String) -> String { "\(name)-\(UUID().uuidString.prefix(8))" }

@Suite("Quotas shared in PostgreSQL", .serialized, .timeLimit(.minutes(3)), .cpuQuiet, .enabled(if: postgresURL != nil))
struct SharedQuotaTests {
    @Test("a key's concurrent streams hold across instances; a slot given back counts at once on the next call")
    func streamsAcrossInstances() async throws {
        try await withQuotaDatabase { database in
            // Leases long enough that no slot lapses while this test runs (no renewal service runs here).
            let a = store(database, "a", lease: .seconds(30)), b = store(database, "b", lease: .seconds(30))
            let request = AdmissionRequest(key: freshKey("streams"), day: 1, concurrentStreams: 2, serverLimit: 100)
            guard case .admitted = try await a.admit(request), case .admitted(let second) = try await b.admit(request) else {
                Issue.record("the first two streams were refused")
                return
            }
            #expect(try await a.admit(request) == .keyFull)
            #expect(try await b.admit(request) == .keyFull)
            // B's stream ends: nothing is written yet (no flush ran), but B's next call carries the release.
            b.release(second)
            #expect(try await a.admit(request) == .keyFull, "A has not heard of B's release: it is B's to write")
            guard case .admitted = try await b.admit(request) else {
                Issue.record("the slot B gave back was still counted")
                return
            }
            // Each instance's own limit stays its own.
            let small = AdmissionRequest(key: freshKey("server"), day: 1, serverLimit: 2)
            let c = store(database, "c", lease: .seconds(30))
            guard case .admitted = try await c.admit(small), case .admitted = try await c.admit(small) else {
                Issue.record("refused under the server limit")
                return
            }
            #expect(try await c.admit(small) == .serverFull)
            guard case .admitted = try await a.admit(small) else {
                Issue.record("another instance's server limit applied")
                return
            }
        }
    }

    @Test("a slot of an instance that died stops counting within the lease; a live instance's renewals keep theirs")
    func leases() async throws {
        try await withQuotaDatabase { database in
            let key = freshKey("lease")
            let request = AdmissionRequest(key: key, day: 1, concurrentStreams: 1, serverLimit: 100)
            let dead = store(database, "dead"), other = store(database, "other")
            guard case .admitted = try await dead.admit(request) else {
                Issue.record("the first stream was refused")
                return
            }
            let taken = ContinuousClock.now
            #expect(try await other.admit(request) == .keyFull)
            // `dead` never renews nor releases (as after SIGKILL): its slot stops counting after the 1 s lease.
            var freed = false
            while ContinuousClock.now - taken < .seconds(5) {
                if case .admitted = try await other.admit(request) { freed = true; break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(freed)
            #expect(ContinuousClock.now - taken >= .milliseconds(900), "freed before the lease ran out")

            // A live instance renews its slots every third of a lease: held well past one lease, then given back.
            let liveKey = freshKey("live")
            let liveRequest = AdmissionRequest(key: liveKey, day: 1, concurrentStreams: 1, serverLimit: 100)
            let live = store(database, "live")
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await live.run() }
                defer { group.cancelAll() }
                guard case .admitted(let slot) = try await live.admit(liveRequest) else {
                    Issue.record("the live instance's stream was refused")
                    return
                }
                try await Task.sleep(for: .milliseconds(2_500))
                #expect(try await other.admit(liveRequest) == .keyFull, "a renewed slot expired")
                live.release(slot)
                // Written by the live instance's next flush (every 50 ms here).
                var admitted = false
                for _ in 0..<40 {
                    if case .admitted = try await other.admit(liveRequest) { admitted = true; break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(admitted, "the released slot was never written")
            }
        }
    }

    @Test("requests per minute and the daily output budget hold across instances")
    func rateAndBudget() async throws {
        try await withQuotaDatabase { database in
            let a = store(database, "a"), b = store(database, "b")
            let key = freshKey("rate")
            #expect(try await a.takeRequest(key: key, perMinute: 3) == nil)
            #expect(try await b.takeRequest(key: key, perMinute: 3) == nil)
            #expect(try await a.takeRequest(key: key, perMinute: 3) == nil)
            let wait = try #require(try await b.takeRequest(key: key, perMinute: 3), "a fourth request in a minute was let through")
            #expect(wait > .seconds(10) && wait <= .seconds(20), "one of 3 per minute is back in 20 s at most: \(wait)")
            // A stream's admission takes its request from the same bucket.
            let admission = try await a.admit(AdmissionRequest(key: key, requestsPerMinute: 3, day: 1, serverLimit: 100))
            guard case .rateLimited = admission else {
                Issue.record("admitted past the rate: \(admission)")
                return
            }

            let spender = freshKey("budget")
            let day = utcToday().day
            let budget = AdmissionRequest(key: spender, outputTokensPerDay: 20, day: day, serverLimit: 100)
            a.addOutputTokens(15, key: spender, day: day)
            // Not yet written: B does not know; A's own call carries what it owes.
            guard case .admitted(let one) = try await b.admit(budget), case .admitted(let two) = try await a.admit(budget) else {
                Issue.record("refused under the budget")
                return
            }
            a.release(one)
            b.release(two)
            a.addOutputTokens(10, key: spender, day: day)
            await a.flush()
            #expect(try await b.admit(budget) == .budgetExhausted, "25 of 20 tokens spent, across two instances")
            // Another day starts from zero.
            var tomorrow = budget
            tomorrow.day = day + 1
            guard case .admitted = try await b.admit(tomorrow) else {
                Issue.record("the next day's budget was spent")
                return
            }
        }
    }

    @Test("two servers on one database: a key's stream slots and requests are counted across both, over HTTP")
    func overHTTP() async throws {
        try await MockAnthropic.run { mock in
            let holding: [MockAnthropic.Piece] = [SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Holding"), .pause(.seconds(3)),
                                                  SSE.text(0, " on."), SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]
            mock.enqueue(.stream(holding), .stream(SSE.textAnswer(["Next."])))
            try await withTwoInstances(mock, limits: "{ concurrent_streams: 1, requests_per_minute: 6 }") { portA, portB, _, _, auth in
                // Request 1: a stream on A that holds its slot for 3 s.
                async let first = streamChat(port: portA, body: chatJSON("hold"), headers: auth)
                #expect(await eventually(within: .seconds(5)) { mock.received.count == 1 })
                // Request 2: the same key on B finds its one slot taken on A.
                let refused = try await streamChat(port: portB, body: chatJSON("again"), headers: auth)
                #expect(refused.status == 429, "\(refused.status)")
                #expect(refused.header("x-switchboard-instance") == "sb-b")
                #expect((refused.body?["error"] as? [String: Any])?["code"] as? String == "too_many_streams")
                let held = try await first
                #expect(held.types.last == "complete")
                // Request 3: the slot is back at once: A gave it back before its stream's last bytes.
                let next = try await streamChat(port: portB, body: chatJSON("next"), headers: auth)
                #expect(next.types.last == "complete")
                // Requests per minute: 6 across both instances, each chat request above took one; the 3 left go to
                // analyses alternating between A and B, and the rest are refused.
                var statuses: [UInt] = []
                for port in [portA, portB, portA, portB, portA] {
                    statuses.append(try await analyzeStatus(port: port, auth: auth))
                }
                #expect(statuses == [200, 200, 200, 429, 429])
            }
        }
    }
}


/// Two servers (instances `sb-a` and `sb-b`) on the test database, sharing the keys file `keys` (one key with
/// `limits`), for `body(portA, portB, metricsA, metricsB, auth)`.
private func withTwoInstances(_ mock: MockAnthropic, limits: String,
                              _ body: @Sendable (Int, Int, ServerMetrics, ServerMetrics, [(String, String)]) async throws -> Void)
    async throws {
    let url = try #require(postgresURL)
    let id = freshKey("pair")
    let secret = "sb_pair-key-\(UUID().uuidString.prefix(12))"
    let digest = APIKey.digest(of: secret).map { String(format: "%02x", $0) }.joined()
    let keys = try TemporaryRules("version: 1\nkeys:\n  - id: \(id)\n    sha256: \(digest)\n    limits: \(limits)\n")
    defer { keys.remove() }
    @Sendable func config(_ instance: String) -> ServerConfiguration {
        var config = streamingConfiguration(mock)
        config.database = .postgres(url: url)
        config.apiKeysPath = keys.path
        config.instanceID = instance
        return config
    }
    let metricsA = ServerMetrics(), metricsB = ServerMetrics()
    let appA = try await buildApplication(configuration: config("sb-a"), metrics: metricsA)
    try await appA.test(.live) { clientA in
        let portA = try #require(clientA.port)
        #expect(await eventually(within: .seconds(10)) { (try? await clientA.execute(uri: "/ready", method: .get) { $0.status }) == .ok })
        let appB = try await buildApplication(configuration: config("sb-b"), metrics: metricsB)
        try await appB.test(.live) { clientB in
            try await body(portA, try #require(clientB.port), metricsA, metricsB, [("authorization", "Bearer \(secret)")])
        }
    }
}

extension SharedQuotaTests {
    @Test("a finished stream's slot is free everywhere at once: chats one after another on two instances are never refused; concurrent ones still are")
    func slotFreeEverywhere() async throws {
        try await MockAnthropic.run { mock in
            for index in 0..<8 { mock.enqueue(.stream(SSE.textAnswer(["answer \(index)"]))) }
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Holding"), .pause(.seconds(2)), SSE.text(0, "."),
                                  SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop]))
            try await withTwoInstances(mock, limits: "{ concurrent_streams: 1 }") { portA, portB, _, _, auth in
                var statuses: [UInt] = []
                for index in 0..<8 {
                    let stream = try await streamChat(port: index % 2 == 0 ? portA : portB, body: chatJSON("chat \(index)"), headers: auth)
                    statuses.append(stream.status)
                    #expect(stream.status != 200 || stream.types.last == "complete")
                }
                #expect(statuses == Array(repeating: 200, count: 8), "a key was refused for streams that had ended")
                // The limit still holds for streams that are open at once.
                async let holding = streamChat(port: portA, body: chatJSON("hold"), headers: auth)
                #expect(await eventually(within: .seconds(5)) { mock.received.count == 9 })
                let second = try await streamChat(port: portB, body: chatJSON("again"), headers: auth)
                #expect(second.status == 429)
                #expect(try await holding.types.last == "complete")
            }
        }
    }

    @Test("every token is charged across instances: a client that hangs up after three chunks, every time, runs out of budget")
    func hangUpsChargedAcrossInstances() async throws {
        try await MockAnthropic.run { mock in
            for _ in 0..<6 { mock.enqueue(threeChunksThenAPause) }
            try await withTwoInstances(mock, limits: "{ output_tokens_per_day: 10 }") { portA, portB, metricsA, metricsB, auth in
                var refusedOnTry: Int?
                for attempt in 1...5 {
                    let (port, metrics) = attempt % 2 == 1 ? (portA, metricsA) : (portB, metricsB)
                    let response = try await postChat(port: port, body: chatJSON("tell me"), headers: auth)
                    if response.status == .tooManyRequests {
                        #expect(String(buffer: try await response.body.collect(upTo: 1 << 16)).contains("budget_exhausted"))
                        refusedOnTry = attempt
                        break
                    }
                    _ = try await receiveStream(response) { $0.types.filter { $0 == "text_chunk" }.count >= 3 }
                    // The instance books the cut call once it notices the hang-up.
                    #expect(await eventually {
                        String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self).contains(#"direction="output"} 6"#)
                    })
                }
                #expect(refusedOnTry == 3, "10 tokens a day, 6 charged per cut try, across two instances: the third is refused")
            }
        }
    }

    @Test("the quota store down costs seconds: a chat is answered 503 quotas_unavailable with Retry-After within 5 s; chats are served again soon after it returns")
    func quotaStoreDown() async throws {
        let outage = try await OutagePostgres.start()
        do {
            try await quotaStoreDown(outage)
        } catch {
            await outage.remove()
            throw error
        }
        await outage.remove()
    }

    private func quotaStoreDown(_ outage: OutagePostgres) async throws {
        try await MockAnthropic.run { mock in
            for index in 0..<20 { mock.enqueue(.stream(SSE.textAnswer(["answer \(index)"]))) }
            var config = streamingConfiguration(mock)
            config.database = .postgres(url: outage.url)
            config.quotaTimeout = .seconds(2)
            let app = try await buildApplication(configuration: config)
            try await app.test(.live) { client in
                let port = try #require(client.port)
                #expect(await eventually(within: .seconds(10)) { (try? await client.execute(uri: "/ready", method: .get) { $0.status }) == .ok })
                #expect(try await streamChat(port: port, body: chatJSON("before")).types.last == "complete")
                try await outage.stop()
                let clock = ContinuousClock()
                let asked = clock.now
                let refused = try await streamChat(port: port, body: chatJSON("during"))
                let waited = clock.now - asked
                #expect(refused.status == 503)
                #expect((refused.body?["error"] as? [String: Any])?["code"] as? String == "quotas_unavailable")
                #expect(refused.header("retry-after") != nil)
                #expect(waited < .seconds(5), "answered after \(waited)")
                try await outage.restart()
                let back = clock.now
                #expect(await eventually(within: .seconds(20)) {
                    (try? await streamChat(port: port, body: chatJSON("after")).types.last) == "complete"
                })
                #expect(clock.now - back < .seconds(20))
            }
        }
    }
}

/// A PostgreSQL server of this test's own (on another port and folder than the suite's), which the test stops and
/// starts again, with `scripts/test-postgres.sh`.
private struct OutagePostgres {
    let port: Int
    let directory: String
    var url: String { "postgres://postgres@127.0.0.1:\(port)/switchboard_test?sslmode=disable" }

    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/test-postgres.sh").path
    }

    static func start() async throws -> OutagePostgres {
        let outage = OutagePostgres(port: freeLoopbackPort(), directory: "/tmp/switchboard-outage-\(UUID().uuidString.prefix(8))")
        try await outage.run("start")
        return outage
    }

    /// Runs the script to its exit on a thread of its own, its output in a file: the server it starts keeps
    /// whatever it inherited open, so nothing may wait for a pipe's end.
    func run(_ command: String) async throws {
        let log = URL(fileURLWithPath: directory + ".log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["SWITCHBOARD_TEST_POSTGRES_PORT=\(port)", "SWITCHBOARD_TEST_POSTGRES_DIR=\(directory)", "bash", Self.script,
                             command]
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let status = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
        try? handle.close()
        struct Failed: Error { let output: String }
        guard status == 0 else { throw Failed(output: (try? String(contentsOf: log, encoding: .utf8)) ?? "") }
    }

    func stop() async throws { try await run("stop") }
    func restart() async throws { try await run("start") }

    func remove() async {
        try? await stop()
        try? FileManager.default.removeItem(atPath: directory)
        try? FileManager.default.removeItem(atPath: directory + ".log")
    }
}

private func analyzeStatus(port: Int, auth: [(String, String)]) async throws -> UInt {
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/mcp/chat/analyze")
    request.method = .POST
    request.headers.add(contentsOf: auth + [("content-type", "application/json")])
    request.body = .bytes(ByteBuffer(string: chatJSON("how many?")))
    return try await HTTPClient.shared.execute(request, timeout: .seconds(10)).status.code
}
