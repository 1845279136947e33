import AnthropicMock
import AsyncHTTPClient
import ChatCore
import Foundation
import NIOCore
import Synchronization
import TestSupport
import Testing

private let postgresURL = clusterPostgresURL
private let nginxInstalled = ["/usr/sbin/nginx", "/usr/bin/nginx"].contains { FileManager.default.isExecutableFile(atPath: $0) }

private let plainKey = "sb_cluster-plain-key-0123456789abcdef"
private let limitedKey = "sb_cluster-limited-key-0123456789abcd"

private func digest(_ key: String) throws -> String {
    // The keys file wants the key's SHA-256; `switchboard keys new` prints it, and so does this.
    let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c",
        "import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())", key])
    return result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// What a client saw of one chat through the cluster.
private struct Chat: Sendable {
    var status: UInt = 0
    /// When the response's head arrived (a stream was admitted, or refused).
    var answeredAt = ContinuousClock.now
    var instance: String?
    var types: [String] = []
    var sessionId: String?
    var errorCode: String?
    var complete: Bool { types.last == "complete" }
}

/// `POST /mcp/chat/stream` through `port` with `key`.
private func chatRequest(_ port: Int, key: String, resumable: Bool) -> HTTPClientRequest {
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/mcp/chat/stream")
    request.method = .POST
    request.headers.add(name: "content-type", value: "application/json")
    request.headers.add(name: "authorization", value: "Bearer \(key)")
    request.body = .bytes(ByteBuffer(string: #"{"messages":[{"role":"user","content":"hi"}],"accumulated":false,"resumable":\#(resumable)}"#))
    return request
}

/// One chat through `port`, read to its end (or to the connection's end).
private func chat(_ port: Int, key: String, resumable: Bool = false, onEvent: (@Sendable ([String: Any]) -> Void)? = nil)
    async throws -> Chat
{
    let response = try await HTTPClient.shared.execute(chatRequest(port, key: key, resumable: resumable), timeout: .seconds(60))
    var seen = Chat(status: response.status.code, answeredAt: .now, instance: response.headers.first(name: "x-switchboard-instance"))
    guard response.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true else {
        let body = try await response.body.collect(upTo: 1 << 16)
        let json = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
        seen.errorCode = (json?["error"] as? [String: Any])?["code"] as? String
        return seen
    }
    var decoder = SSEDecoder()
    do {
        for try await part in response.body {
            try decoder.feed(part.readableBytesView) { event in
                let json = (try? JSONSerialization.jsonObject(with: Data(event.data.utf8))) as? [String: Any] ?? [:]
                seen.types.append(json["type"] as? String ?? "?")
                if let id = json["sessionId"] as? String { seen.sessionId = id }
                if let code = json["code"] as? String { seen.errorCode = code }
                onEvent?(json)
            }
        }
    } catch {
        seen.types.append("connection_lost")
    }
    return seen
}

/// `scripts/cluster.sh` with N instances on loopback, stopped by PID at the end.
private final class Cluster: Sendable {
    let port: Int
    let directory: URL
    let pids: [String: Int32]

    init(instances: Int, environment: [String: String]) throws {
        port = freeLoopbackPort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-cluster-\(UUID().uuidString.prefix(8))")
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("switchboard")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["bash", root.appendingPathComponent("scripts/cluster.sh").path, "start", "-n", "\(instances)",
                             "--port", "\(port)", "--binary", binary.path, "--dir", directory.path]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        // A file, not a pipe: the servers the script leaves running must not hold this test's end of anything.
        let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-start-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outURL) }
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = FileHandle.standardError
        try process.run()
        // The script's last line names nginx once everything is ready. (Its exit is not waited for: Foundation may
        // not notice the exit of a script whose children live on.)
        var text = ""
        let deadline = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now < deadline {
            text = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
            if text.contains("\nnginx ") || text.hasPrefix("nginx ") { break }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        guard text.contains("nginx ") else { throw ClusterError(description: "cluster.sh start failed:\n\(text)") }
        var pids: [String: Int32] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 3, let pid = Int32(parts[2]) { pids[String(parts[0])] = pid }
        }
        self.pids = pids
    }

    /// Starts the cluster on a thread of its own (the script waits for every instance to be ready).
    static func start(instances: Int, environment: [String: String]) async throws -> Cluster {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try Cluster(instances: instances, environment: environment) })
            }
        }
    }

    func log(_ instance: String) -> String {
        (try? String(contentsOf: directory.appendingPathComponent("\(instance).log"), encoding: .utf8)) ?? ""
    }

    func isRunning(_ instance: String) -> Bool {
        guard let pid = pids[instance] else { return false }
        return kill(pid, 0) == 0 && !((try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.contains(") Z ") ?? true)
    }

    func stop() {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        _ = try? runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                            ["bash", root.appendingPathComponent("scripts/cluster.sh").path, "stop", "--dir", directory.path])
        try? FileManager.default.removeItem(at: directory)
    }
}

private struct ClusterError: Error, CustomStringConvertible { let description: String }

@Suite("A cluster: three instances, PostgreSQL, nginx", .serialized, .timeLimit(.minutes(3)),
       .enabled(if: postgresURL != nil && nginxInstalled, "needs PostgreSQL (SWITCHBOARD_TEST_POSTGRES_URL) and nginx (.ci/run)"))
struct ClusterTests {
    @Test("chats spread and complete; quotas hold across instances; a dropped resumable chat resumes through nginx on its instance; SIGTERM drains one while nginx sends new chats to the others; a resume to it gets a clear 404; SIGKILL ends only its own streams and frees its slots within the lease")
    func cluster() async throws {
        try await MockAnthropic.run { mock in
            // Every answer takes about 4 s (pieces 800 ms apart), so streams overlap what the test does.
            let answer = SSE.paced(SSE.textAnswer(["one ", "two ", "three ", "four ", "five."]), pauseEvery: 2, for: .milliseconds(800))
            // The 9th to 16th upstream calls (step 2c's sequential chats) answer at once.
            for index in 0..<68 { mock.enqueue(.stream((8..<16).contains(index) ? SSE.textAnswer(["quick."]) : answer)) }
            let keys = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-keys-\(UUID().uuidString.prefix(8)).yaml")
            try """
                version: 1
                keys:
                  - { id: plain-\(UUID().uuidString.prefix(6)), sha256: \(try digest(plainKey)) }
                  - id: limited-\(UUID().uuidString.prefix(6))
                    sha256: \(try digest(limitedKey))
                    limits: { concurrent_streams: 2 }
                """.write(to: keys, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: keys) }
            let cluster = try await Cluster.start(instances: 3, environment: [
                "ANTHROPIC_API_KEY": "sk-ant-cluster-test", "ANTHROPIC_BASE_URL": mock.baseURL,
                "SWITCHBOARD_API_KEYS_FILE": keys.path, "SWITCHBOARD_DATABASE": try #require(postgresURL),
                "SWITCHBOARD_QUOTA_LEASE": "2", "SWITCHBOARD_SHUTDOWN_GRACE": "10", "LOG_LEVEL": "warning",
            ])
            defer { cluster.stop() }
            // In this order: the last two stop instances.
            try await spreadAndRecorded(cluster.port)
            try await limitHeldAcrossInstances(cluster.port, mock: mock)
            try await sequentialChatsNeverRefused(cluster.port)
            try await droppedChatResumesOnItsInstance(cluster.port)
            try await sigtermDrains(cluster)
            try await sigkillFreesSlotsWithinTheLease(cluster)
        }
    }

    /// Six chats at once: every instance serves some, every one completes, and calibration records all six.
    private func spreadAndRecorded(_ port: Int) async throws {
        let six = try await withThrowingTaskGroup(of: Chat.self) { group in
            for _ in 0..<6 { group.addTask { try await chat(port, key: plainKey) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(six.allSatisfy { $0.complete }, "\(six.map(\.types))")
        #expect(Set(six.compactMap(\.instance)) == ["sb-1", "sb-2", "sb-3"], "\(six.map(\.instance))")
        // Calibration sees every instance's chats: one table, each record named by its session (INSTANCE.UUID).
        let ids = six.compactMap(\.sessionId)
        #expect(ids.count == 6)
        let recorded = await eventually(within: .seconds(5), every: .milliseconds(200)) {
            let query = "SELECT count(DISTINCT split_part(session_id, '.', 1)) || ' ' || count(*) FROM stream_records WHERE session_id IN ("
                + ids.map { "'\($0)'" }.joined(separator: ",") + ")"
            let answer = try? runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["psql", postgresURL ?? "", "-tAc", query])
            return answer?.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "3 6"
        }
        #expect(recorded, "the six chats of three instances are not all in stream_records")
    }

    /// A key with 2 streams: two held on the cluster, the third refused wherever it lands.
    private func limitHeldAcrossInstances(_ port: Int, mock: MockAnthropic) async throws {
        async let firstHeld = chat(port, key: limitedKey)
        async let secondHeld = chat(port, key: limitedKey)
        #expect(await eventually(within: .seconds(5)) { mock.received.count >= 8 })
        let third = try await chat(port, key: limitedKey)
        #expect((third.status, third.errorCode) == (429, "too_many_streams"), "\(third)")
        let held = try await [firstHeld, secondHeld]
        #expect(held.allSatisfy { $0.complete })
        #expect(Set(held.compactMap(\.instance)).count == 2, "nginx spread them: \(held.map(\.instance))")
    }

    /// The same key's chats strictly one after another: a stream that ended is free on every instance at once, so
    /// none is refused (each goes to the next instance in nginx's turn).
    private func sequentialChatsNeverRefused(_ port: Int) async throws {
        var sequential: [Chat] = []
        for _ in 0..<8 { sequential.append(try await chat(port, key: limitedKey)) }
        #expect(sequential.map(\.status) == Array(repeating: 200, count: 8), "\(sequential.map { ($0.status, $0.errorCode) })")
        #expect(sequential.allSatisfy { $0.complete })
        #expect(Set(sequential.compactMap(\.instance)).count == 3)
    }

    /// A resumable chat whose connection drops mid-stream, resumed through nginx: the resume reaches the instance
    /// that holds it (not the next in nginx's turn), with nothing lost or repeated.
    private func droppedChatResumesOnItsInstance(_ port: Int) async throws {
        let dropped = try await HTTPClient.shared.execute(chatRequest(port, key: plainKey, resumable: true), timeout: .seconds(30))
        var before: [(id: Int, json: [String: Any])] = []
        var decoder = SSEDecoder()
        readLoop: for try await part in dropped.body {
            try decoder.feed(part.readableBytesView) { event in
                let json = (try? JSONSerialization.jsonObject(with: Data(event.data.utf8))) as? [String: Any] ?? [:]
                before.append((Int(event.id ?? "") ?? -1, json))
            }
            if before.contains(where: { $0.json["type"] as? String == "text_chunk" }) { break readLoop }
        }
        // Leaving the loop drops the connection; the chat goes on on its instance.
        let resumeId = try #require(before.first?.json["sessionId"] as? String)
        let lastSeen = try #require(before.last?.id)
        var pickUp = HTTPClientRequest(url: "http://127.0.0.1:\(port)/mcp/chat/stream/\(resumeId)")
        pickUp.headers.add(name: "authorization", value: "Bearer \(plainKey)")
        pickUp.headers.add(name: "last-event-id", value: "\(lastSeen)")
        let resumedResponse = try await HTTPClient.shared.execute(pickUp, timeout: .seconds(30))
        #expect(resumedResponse.status == .ok)
        #expect(resumedResponse.headers.first(name: "x-switchboard-instance") == String(resumeId.prefix { $0 != "." }))
        var after: [(id: Int, json: [String: Any])] = []
        var resumeDecoder = SSEDecoder()
        for try await part in resumedResponse.body {
            try resumeDecoder.feed(part.readableBytesView) { event in
                let json = (try? JSONSerialization.jsonObject(with: Data(event.data.utf8))) as? [String: Any] ?? [:]
                after.append((Int(event.id ?? "") ?? -1, json))
            }
        }
        let eventIds = (before + after).map(\.id)
        #expect(eventIds == Array(1...eventIds.count), "every event once, in order: \(eventIds)")
        #expect(after.last?.json["type"] as? String == "complete")
        let text = (before + after).compactMap { $0.json["chunk"] as? String }.joined()
        #expect(text == "one two three four five.", "\(text)")
    }

    /// SIGTERM on the instance holding a resumable chat, mid-stream: that chat drains to its end; new chats meanwhile
    /// all complete on the others; once it has exited, a resume to it gets a 404 at once.
    private func sigtermDrains(_ cluster: Cluster) async throws {
        let port = cluster.port
        let sessions = SessionLog()
        async let drained = chat(port, key: plainKey, resumable: true, onEvent: sessions.note)
        #expect(await eventually(within: .seconds(10)) { sessions.first != nil })
        let sessionId = try #require(sessions.first)
        let owner = String(sessionId.prefix { $0 != "." })
        let ownerPID = try #require(cluster.pids[owner], "\(sessionId)")
        kill(ownerPID, SIGTERM)
        // Chats sent at once (the signal may not have landed yet) and half a second later: none fails, and the
        // later ones all go to the other instances.
        async let atOnce = withThrowingTaskGroup(of: Chat.self) { group in
            for _ in 0..<4 { group.addTask { try await chat(port, key: plainKey) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        try await Task.sleep(for: .milliseconds(500))
        let later = try await withThrowingTaskGroup(of: Chat.self) { group in
            for _ in 0..<6 { group.addTask { try await chat(port, key: plainKey) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let first = try await atOnce
        #expect((first + later).allSatisfy { $0.complete },
                "no chat failed while \(owner) drained: \((first + later).map { ($0.status, $0.instance, $0.types) })")
        #expect(!later.contains { $0.instance == owner }, "\(later.map(\.instance))")
        let resumed = try await drained
        #expect(resumed.complete, "the draining instance finished its chat: \(resumed.types)")
        #expect(await eventually(within: .seconds(15)) { !cluster.isRunning(owner) }, "\(cluster.log(owner).suffix(2_000))")
        var resume = HTTPClientRequest(url: "http://127.0.0.1:\(port)/mcp/chat/stream/\(sessionId)")
        resume.headers.add(name: "authorization", value: "Bearer \(plainKey)")
        resume.headers.add(name: "last-event-id", value: "2")
        let asked = ContinuousClock.now
        let gone = try await HTTPClient.shared.execute(resume, timeout: .seconds(10))
        let goneBody = try await gone.body.collect(upTo: 1 << 16)
        #expect(gone.status == .notFound)
        #expect(String(buffer: goneBody).contains("session_not_found"))
        #expect(ContinuousClock.now - asked < .seconds(5), "a clear answer, not a wait for the 10 s timeout")
    }

    /// SIGKILL on an instance holding a limited key's stream: only its streams end; the key's slot it held counts
    /// until the lease (2 s) runs out, then frees, while the other instance's stream still runs.
    private func sigkillFreesSlotsWithinTheLease(_ cluster: Cluster) async throws {
        let port = cluster.port
        let limited = SessionLog()
        async let l1 = chat(port, key: limitedKey, onEvent: limited.note)
        async let l2 = chat(port, key: limitedKey, onEvent: limited.note)
        #expect(await eventually(within: .seconds(10)) { limited.all.count == 2 })
        let owners = limited.all.map { String($0.prefix { $0 != "." }) }
        let victim = owners[0]
        let victimPID = try #require(cluster.pids[victim])
        kill(victimPID, SIGKILL)
        let killed = ContinuousClock.now
        // Right away, the dead instance's slot still counts (2 of 2 with the other one).
        let early = try await chat(port, key: limitedKey)
        let survivorHasOne = owners.contains { $0 != victim }
        if survivorHasOne {
            #expect(early.errorCode == "too_many_streams", "\(early)")
        }
        // Within the lease it stops counting.
        var freedAfter: Duration?
        while ContinuousClock.now - killed < .seconds(8) {
            let attempt = try await chat(port, key: limitedKey)
            if attempt.status == 200 { freedAfter = attempt.answeredAt - killed; break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let freed = try #require(freedAfter, "the dead instance's slot never freed")
        #expect(freed < .seconds(6), "freed \(freed) after the kill; the lease is 2 s")
        for ended in try await [l1, l2] {
            let owner = ended.sessionId.map { String($0.prefix { $0 != "." }) }
            if owner == victim {
                #expect(!ended.complete, "a stream on the killed instance cannot have completed")
            } else {
                #expect(ended.complete, "a stream on \(owner ?? "?") was lost with \(victim): \(ended.types)")
            }
        }
    }
}

/// The session ids a chat's `session_start` events carried, in order.
private final class SessionLog: Sendable {
    private let ids = Mutex<[String]>([])
    var first: String? { ids.withLock { $0.first } }
    var all: [String] { ids.withLock { $0 } }

    func note(_ event: [String: Any]) {
        guard event["type"] as? String == "session_start", let id = event["sessionId"] as? String else { return }
        ids.withLock { $0.append(id) }
    }
}
