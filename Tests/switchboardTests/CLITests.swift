import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestSupport
import Testing

/// Runs the built `switchboard` binary as a user would.
struct CLI {
    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("switchboard")
    }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// Runs the binary without blocking a concurrency thread while it works (a server may be in this process).
    static func runAsync(_ arguments: [String], in directory: URL = repositoryRoot) async throws -> Result {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        // Files, not pipes: a pipe nobody reads while the process runs could fill and stall it.
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        let outURL = base.appendingPathExtension("out")
        let errURL = base.appendingPathExtension("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        process.standardOutput = out
        process.standardError = err
        try process.run()
        await eventually(within: .seconds(120), every: .milliseconds(10)) { !process.isRunning }
        try out.close()
        try err.close()
        return Result(status: process.terminationStatus, stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }

    static func run(_ arguments: [String], in directory: URL = repositoryRoot) throws -> Result {
        let result = try runProcess(binary, arguments, in: directory)
        return Result(status: result.status, stdout: result.stdoutText, stderr: result.stderrText)
    }
}

func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

@Suite("CLI")
struct CLITests {
    @Test("analyze explains the decision in words")
    func analyzeReadable() throws {
        let result = try CLI.run(["analyze", "chart", "salary trends by department and compare with last year"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "complexity: complex (score 16)")
        #expect(lines.contains("route:      desktop → advise: Charts, exports and multi-step analysis run faster in the desktop client."))
        #expect(lines.contains("  charts +7  on \"chart\" [0..<5]  — charts, graphs, plots, visualisations and dashboards belong in the desktop client"))
        #expect(lines.contains("  comparison +2  on \"compare\" [38..<45]  — comparing two groups means more than one query"))
        #expect(lines.contains("levels:     simple ≤ 1, moderate ≤ 6, complex above"))
    }

    @Test("analyze --json prints the API's answer")
    func analyzeJSON() throws {
        let result = try CLI.run(["analyze", "--json", "give me list of employees with 5-10% increment"])
        #expect(result.status == 0, "\(result.stderr)")
        let answer = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(answer["complexity"] as? String == "simple")
        #expect(answer["route"] as? String == "fast")
        #expect(answer["model"] as? String == "claude-haiku-4-5")
        #expect((answer["rulesVersion"] as? String)?.hasPrefix("sha256:") == true)
    }

    @Test("rules check prints every problem compiler-style and exits 1")
    func rulesCheckBroken() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let yaml = """
            version: 1
            levels:
              - { name: simple, route: fast }
            routes:
              fast: { action: stream }
            rules:
              - id: charts
                when: { regx: 'chart' }
                weight: 4
              - id: pdf
                when: { any_keywords: [pdf] }
                route: fsat
            """
        try Data(yaml.utf8).write(to: directory.appendingPathComponent("rules.yaml"))
        let result = try CLI.run(["rules", "check", "rules.yaml"], in: directory)
        #expect(result.status == 1)
        #expect(result.stdout == """
            rules.yaml:8:13: error: rule "charts": unknown condition "regx" (did you mean "regex"?)
            rules.yaml:12:12: error: rule "pdf": unknown route "fsat" (did you mean "fast"?)
            rules.yaml: 2 errors, 0 warnings

            """)
    }

    @Test("rules check passes the shipped file")
    func rulesCheckShipped() throws {
        let result = try CLI.run(["rules", "check"])
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("rules.yaml: ok, 10 rules, 3 levels, 3 routes, 8 examples passed"), "\(result.stdout)")
    }

    @Test("rules test prints each example with the analysis that failed")
    func rulesTest() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let shipped = try String(contentsOf: CLI.repositoryRoot.appendingPathComponent("rules.yaml"), encoding: .utf8)
        let yaml = shipped + """
              - query: "plot the headcount"
                expect: { level: simple }

            """
        try Data(yaml.utf8).write(to: directory.appendingPathComponent("rules.yaml"))
        let result = try CLI.run(["rules", "test", "rules.yaml"], in: directory)
        #expect(result.status == 1)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let line = shipped.filter { $0 == "\n" }.count + 1
        #expect(lines.filter { $0.hasPrefix("PASS ") }.count == 8)
        #expect(lines.contains("FAIL rules.yaml:\(line): \"plot the headcount\" → complex/desktop, score 9 from charts +7, aggregation +2"))
        #expect(lines.contains("     expected level simple, got complex"))
        #expect(lines.last == "8 passed, 1 failed")
    }

    @Test("serve without a rules file runs on the built-in rules")
    func embeddedDefaults() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try ServerProcess(directory: directory, arguments: [])
        defer { server.stop() }
        let status = try await server.get("/rules")
        #expect(status["source"] as? String == "embedded")
        #expect(status["ruleCount"] as? Int == 10)
    }

    @Test("serve reloads on SIGHUP and stops cleanly on SIGTERM", .timeLimit(.minutes(1)))
    func sighup() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let rulesURL = directory.appendingPathComponent("rules.yaml")
        let shipped = try String(contentsOf: CLI.repositoryRoot.appendingPathComponent("rules.yaml"), encoding: .utf8)
        try Data(shipped.utf8).write(to: rulesURL)
        // A poll interval of a minute leaves the reload to the signal.
        let server = try ServerProcess(directory: directory, arguments: ["--rules", "rules.yaml"],
                                       environment: ["SWITCHBOARD_RULES_POLL_MS": "60000"])
        defer { server.stop() }
        #expect(try await server.get("/rules")["reloads"] as? Int == 0)

        try Data(shipped.replacingOccurrences(of: "estimated_seconds: 25", with: "estimated_seconds: 30").utf8).write(to: rulesURL)
        kill(server.process.processIdentifier, SIGHUP)
        #expect(try await eventually(within: .seconds(5), every: .milliseconds(20)) {
            try await server.get("/rules")["reloads"] as? Int == 1
        })
        #expect(server.process.isRunning)

        kill(server.process.processIdentifier, SIGTERM)
        #expect(server.process.waitForExit(), "a SIGTERM'd server with no streams exits within 15 s")
        #expect(server.process.terminationStatus == 0, "\((try? String(contentsOf: server.logURL, encoding: .utf8)) ?? "")")
    }
}

/// A `switchboard serve` child process on a free port.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let logURL: URL
    private(set) var port = 0

    init(directory: URL, arguments: [String], environment: [String: String] = [:]) throws {
        logURL = directory.appendingPathComponent("serve.log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        process.executableURL = CLI.binary
        process.arguments = ["serve", "--port", "0"] + arguments
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let log = try FileHandle(forWritingTo: logURL)
        process.standardOutput = log
        process.standardError = log
        try process.run()
        // The log says where it listens.
        for _ in 0..<500 {
            let text = (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
            if let range = text.range(of: "listening on 127.0.0.1:") {
                port = Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
                if port > 0 { return }
            }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        stop()
        throw CocoaError(.fileReadUnknown, userInfo: [NSDebugDescriptionErrorKey: (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""])
    }

    func get(_ path: String) async throws -> [String: Any] {
        let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitForExit()
        }
    }
}

@Suite("rules eval")
struct RulesEvalCommandTests {
    @Test("the shipped rules pass the labelled set's gate, and the report shows accuracy, the matrix and the rules")
    func shippedGate() throws {
        let result = try CLI.run(["rules", "eval", "rules.yaml", "--cases", "routing-eval.yaml", "--min-accuracy", "0.9"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("rules.yaml on routing-eval.yaml (all: ") == true)
        #expect(lines.contains { $0.hasPrefix("accuracy: ") && $0.contains("complex recall: ") })
        #expect(lines.contains("confusion (rows: expected, columns: predicted)"))
        #expect(lines.contains { $0.hasPrefix("  charts ") && $0.contains("complex ") })
    }

    @Test("--min-accuracy above the figure exits 1 and says why; --json gives the same report to tools")
    func gateAndJSON() throws {
        let failing = try CLI.run(["rules", "eval", "--cases", "routing-eval.yaml", "--split", "holdout", "--min-accuracy", "1"])
        let json = try CLI.run(["rules", "eval", "--cases", "routing-eval.yaml", "--split", "holdout", "--json"])
        #expect(json.status == 0, "\(json.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(report["split"] as? String == "holdout")
        #expect(report["levels"] as? [String] == ["simple", "moderate", "complex"])
        let accuracy = try #require(report["accuracy"] as? Double)
        #expect((report["confusion"] as? [[Int]])?.count == 3)
        if accuracy < 1 {
            #expect(failing.status == 1)
            #expect(failing.stderr.contains("is below --min-accuracy 100.0%"), "\(failing.stderr)")
            #expect(!(report["misses"] as? [Any] ?? []).isEmpty)
        } else {
            #expect(failing.status == 0)
        }
    }

    @Test("--suggest tunes the weights of weaker rules and prints the lines to change, with both splits before and after")
    func suggest() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // The shipped rules with charts too light to reach complex.
        let shipped = try String(contentsOf: CLI.repositoryRoot.appendingPathComponent("rules.yaml"), encoding: .utf8)
        let lines = shipped.components(separatedBy: "\n")
        let chartsWeight = try #require(lines.firstIndex { $0 == "    weight: 7" })
        var edited = lines
        edited[chartsWeight] = "    weight: 4"
        // The example that a pie chart is complex would fail at weight 4: drop the examples section.
        let examples = try #require(edited.firstIndex { $0.hasPrefix("examples:") })
        edited.removeSubrange(examples...)
        try Data(edited.joined(separator: "\n").utf8).write(to: directory.appendingPathComponent("rules.yaml"))
        try FileManager.default.copyItem(at: CLI.repositoryRoot.appendingPathComponent("routing-eval.yaml"),
                                         to: directory.appendingPathComponent("routing-eval.yaml"))
        let result = try CLI.run(["rules", "eval", "--cases", "routing-eval.yaml", "--suggest"], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let output = result.stdout.split(separator: "\n").map(String.init)
        let header = try #require(output.first { $0.hasPrefix("suggest: ") })
        #expect(header.contains("tuned on the tune split"))
        #expect(output.contains { $0.hasPrefix("rules.yaml:\(chartsWeight + 1): rule \"charts\": weight 4 → ") })
        #expect(output.contains { $0.hasPrefix("tune: accuracy ") })
        #expect(output.contains { $0.hasPrefix("holdout: accuracy ") })
    }
}

@Suite("keys")
struct KeysCommandTests {
    @Test("keys new prints a fresh key once and an entry whose sha256 is that key's; keys check accepts the entry")
    func newAndCheck() throws {
        let first = try CLI.run(["keys", "new", "web-frontend", "--admin"])
        let second = try CLI.run(["keys", "new", "web-frontend"])
        #expect(first.status == 0, "\(first.stderr)")
        let lines = first.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let key = try #require(lines.first { $0.hasPrefix("sb_") })
        #expect(key.count == 46)
        #expect(!second.stdout.contains(key), "each key is new")
        let digest = try #require(lines.first { $0.hasPrefix("sha256: ") }).dropFirst("sha256: ".count)
        let shasum = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["sh", "-c", "printf %s '\(key)' | sha256sum"])
        #expect(shasum.stdoutText.hasPrefix(String(digest)))
        #expect(lines.contains("admin: true"))

        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let entry = first.stdout.components(separatedBy: "(--api-keys FILE):\n")[1]
        try Data(("version: 1\nkeys:\n" + entry).utf8).write(to: directory.appendingPathComponent("keys.yaml"))
        let check = try CLI.run(["keys", "check", "keys.yaml"], in: directory)
        #expect(check.status == 0, "\(check.stdout)")
        #expect(check.stdout == "keys.yaml: ok, 1 key (1 admin)\n")
    }

    @Test("keys revoke adds the id to revoked: (comments and the rest kept); the key is refused, twice is a no-op")
    func revoke() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("keys.yaml")
        let original = """
            version: 1
            # the web frontend
            keys:
              - { id: web, sha256: \(String(repeating: "0", count: 64)) }
              - { id: ops, sha256: \(String(repeating: "1", count: 64)), admin: true }

            """
        try Data(original.utf8).write(to: file)
        let first = try CLI.run(["keys", "revoke", "web", "--api-keys", "keys.yaml"], in: directory)
        #expect(first.status == 0, "\(first.stdout)")
        #expect(try String(contentsOf: file, encoding: .utf8) == original + "revoked: [web]\n")
        let check = try CLI.run(["keys", "check", "keys.yaml"], in: directory)
        #expect(check.stdout == "keys.yaml: ok, 1 key (1 admin)\n")
        let again = try CLI.run(["keys", "revoke", "web", "--api-keys", "keys.yaml"], in: directory)
        #expect(again.stdout.contains("revoked already"))
        _ = try CLI.run(["keys", "revoke", "ops", "--api-keys", "keys.yaml"], in: directory)
        #expect(try String(contentsOf: file, encoding: .utf8).hasSuffix("revoked: [web, ops]\n"))
    }

    @Test("keys check prints every problem with file:line:col and exits 1")
    func checkBroken() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("""
            version: 1
            keys:
              - { id: a, sha256: abc }
              - { id: b, sha256: \(String(repeating: "0", count: 64)), limits: { concurent_streams: 2 } }
              - { id: b, sha256: \(String(repeating: "1", count: 64)), admin: yes please }
            """.utf8).write(to: directory.appendingPathComponent("keys.yaml"))
        let result = try CLI.run(["keys", "check", "keys.yaml"], in: directory)
        #expect(result.status == 1)
        #expect(result.stdout == """
            keys.yaml:3:22: error: key "a": sha256 must be 64 hexadecimal characters (the key's SHA-256, not the key)
            keys.yaml:4:98: error: key "b": limits: unknown key "concurent_streams" (did you mean "concurrent_streams"?)
            keys.yaml:5:95: error: key "b": admin: expected true or false, found "yes please"

            """)
    }
}
