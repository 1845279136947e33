import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import TestSupport
import Testing
import ConfigFiles
@testable import Server

/// Two rule versions that score "chart compare" differently in both rules, so a mix of them would show.
private func versionA() -> String { chartRules(weight: 4) }            // charts 4 + compare 1 = 5
private func versionB() -> String {                                      // charts 1 + compare 3 = 4
    chartRules(weight: 1).replacingOccurrences(of: "id: compare, weight: 1", with: "id: compare, weight: 3")
}

@Suite("Live reload", .serialized)
struct ReloadTests {
    private func analyze(_ client: some TestClientProtocol, _ text: String) async throws -> [String: Any] {
        try await client.execute(uri: "/mcp/chat/analyze", method: .post, headers: jsonHeaders, body: chatBody(text)) { response in
            #expect(response.status == .ok)
            return try json(response.body)
        }
    }

    private func rulesStatus(_ client: some TestClientProtocol) async throws -> [String: Any] {
        try await client.execute(uri: "/rules", method: .get) { try json($0.body) }
    }

    // An upper bound in time (the README promises "within a second"): it takes its turn with the other timing tests.
    @Test("a good change is served within 1 s at the default poll interval", .timeLimit(.minutes(3)), .cpuQuiet)
    func reloadsWithinOneSecond() async throws {
        let rules = try TemporaryRules(versionA())
        defer { rules.remove() }
        var config = configuration(rules: rules.path)
        config.rulesPollInterval = ServerConfiguration().rulesPollInterval
        let app = try await buildApplication(configuration: config)
        try await app.test(.live) { client in
            #expect(try await analyze(client, "chart compare")["score"] as? Int == 5)
            let clock = ContinuousClock()
            let written = clock.now
            try rules.write(versionB())
            let reloaded = try await eventually(within: .seconds(3), every: .milliseconds(20)) {
                try await analyze(client, "chart compare")["score"] as? Int == 4
            }
            #expect(reloaded)
            #expect(clock.now - written < .seconds(1))
            #expect(try await rulesStatus(client)["reloads"] as? Int == 1)
        }
    }

    @Test("a broken file is refused with its diagnostics and the last good rules keep serving", .timeLimit(.minutes(1)))
    func brokenFileKeepsLastGood() async throws {
        let rules = try TemporaryRules(versionA())
        defer { rules.remove() }
        let app = try await buildApplication(configuration: configuration(rules: rules.path))
        try await app.test(.live) { client in
            let goodVersion = try await rulesStatus(client)["version"] as? String
            try rules.write(versionA().replacingOccurrences(of: "any_keywords: [chart, graph]", with: "any_keyword: [chart]"))
            var status: [String: Any] = [:]
            try await eventually(within: .seconds(5), every: .milliseconds(20)) {
                status = try await rulesStatus(client)
                return status["lastReloadError"] is [String: Any]
            }
            let failure = try #require(status["lastReloadError"] as? [String: Any])
            #expect(failure["diagnostics"] as? [String] == [
                "\(rules.path):10:69: error: rule \"charts\": unknown condition \"any_keyword\" (did you mean \"any_keywords\"?)",
            ])
            #expect(status["version"] as? String == goodVersion)
            #expect(try await analyze(client, "chart compare")["score"] as? Int == 5)

            // Mending the file clears the error and serves the new rules.
            try rules.write(versionB())
            #expect(try await eventually(within: .seconds(5), every: .milliseconds(20)) {
                try await rulesStatus(client)["lastReloadError"] is NSNull
            })
            #expect(try await analyze(client, "chart compare")["score"] as? Int == 4)
        }
    }

    @Test("rewriting the file under load: no request fails, each sees old or new rules, never a mix",
          .timeLimit(.minutes(1)))
    func reloadUnderLoad() async throws {
        let rules = try TemporaryRules(versionA())
        defer { rules.remove() }
        let app = try await buildApplication(configuration: configuration(rules: rules.path))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let httpClient = HTTPClient.shared
            let log = LoadLog()

            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Alternate versions (and a broken file now and then) for 1.5 s.
                    let clock = ContinuousClock()
                    let end = clock.now + .milliseconds(1_500)
                    var round = 0
                    while clock.now < end {
                        round += 1
                        try rules.write(round % 5 == 0 ? "version: 1\nlevels: [" : (round % 2 == 0 ? versionA() : versionB()))
                        try await Task.sleep(for: .milliseconds(70))
                    }
                    log.writing.withLock { $0 = false }
                }
                for _ in 0..<8 {
                    group.addTask {
                        while log.writing.withLock({ $0 }) {
                            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/mcp/chat/analyze")
                            request.method = .POST
                            request.headers.add(name: "content-type", value: "application/json")
                            request.body = .bytes(chatBody("please chart and compare salaries"))
                            let response = try await httpClient.execute(request, timeout: .seconds(5))
                            let body = try await response.body.collect(upTo: 1 << 20)
                            guard response.status == .ok else {
                                log.failures.withLock { $0.append("status \(response.status.code)") }
                                continue
                            }
                            let answer = try json(body)
                            let version = answer["rulesVersion"] as? String ?? "?"
                            let score = answer["score"] as? Int ?? -1
                            log.seen.withLock { _ = $0[version, default: []].insert(score) }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(log.failures.withLock { $0 }.isEmpty)
            let versions = log.seen.withLock { $0 }
            let fingerprints = [ConfigFile.fingerprint(of: Array(versionA().utf8)): 5,
                                ConfigFile.fingerprint(of: Array(versionB().utf8)): 4]
            #expect(versions.count == 2, "both versions were served: \(versions)")
            for (version, scores) in versions {
                #expect(scores == [fingerprints[version] ?? -1], "version \(version) answered scores \(scores)")
            }
        }
    }

    @Test("SIGHUP's forced reload rereads a file whose size and date did not change")
    func forcedReload() throws {
        let rules = try TemporaryRules(chartRules(weight: 4))
        defer { rules.remove() }
        let outcome = RulesFile.load(.file(rules.path))
        let store = RulesStore(rules: try #require(outcome.accepted), source: .file(rules.path))
        let fixedDate = Date(timeIntervalSince1970: 1_600_000_000)
        try FileManager.default.setAttributes([.modificationDate: fixedDate], ofItemAtPath: rules.path)
        let watcher = RulesWatcher(path: rules.path, store: store, logger: Logger(label: "test"))

        // Same size, same modification date, same inode: polling cannot see it.
        let handle = try #require(FileHandle(forWritingAtPath: rules.path))
        try handle.write(contentsOf: Data(chartRules(weight: 3).utf8))
        try handle.close()
        try FileManager.default.setAttributes([.modificationDate: fixedDate], ofItemAtPath: rules.path)

        #expect(watcher.reload(force: false) == .unchanged)
        #expect(store.active.rules.rules.first?.weight == 4)
        #expect(watcher.reload(force: true) == .reloaded)
        #expect(store.active.rules.rules.first?.weight == 3)
        #expect(watcher.reload(force: true) == .unchanged)
    }
}

/// What the load test's clients saw, shared between their tasks.
private final class LoadLog: Sendable {
    let seen = Mutex<[String: Set<Int>]>([:])
    let failures = Mutex<[String]>([])
    let writing = Mutex(true)
}
