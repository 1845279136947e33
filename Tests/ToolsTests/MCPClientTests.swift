import ChatCore
import Foundation
import Logging
import Storage
import Synchronization
import TestSupport
import Testing
@testable import Tools

#if canImport(Glibc)
import Glibc
#endif

private let quietLogger: Logger = {
    var logger = Logger(label: "test.mcp")
    logger.logLevel = ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}()

/// Runs `body` with the connection's service (reconnection) running beside it.
private func withService<T: Sendable>(_ connection: MCPServerConnection,
                                      _ body: @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await connection.run(); return nil }
        let result = try await body()
        group.cancelAll()
        return result
    }
}

@Suite("MCP client against fastmcp", .enabled(if: FastMCP.available, "needs python3 with fastmcp (pip install fastmcp)"), .cpuQuiet)
struct MCPClientTests {
    let stdio = MCPConfiguration.ServerSpec(command: "python3", args: [FastMCP.serverScript])

    @Test("stdio: tools are listed, clash with a built-in is reported, calls run through the registry like built-ins")
    func stdioTools() async throws {
        let connection = MCPServerConnection(name: "python", spec: stdio, logger: quietLogger)
        let remote = try await connection.start()
        #expect(remote.map(\.definition.name).sorted() == ["add", "crash", "environment", "fail", "get_departments", "shout", "slow", "traceparent", "whisper"])
        let add = try #require(remote.first { $0.definition.name == "add" })
        #expect(add.definition.description == "Add two whole numbers.")
        #expect(add.definition.inputSchema["properties"]?["a"]?["type"] == "integer")

        var registry = ToolRegistry()
        registry.register(HRTools.all(database: try SQLiteDatabase()), source: "built-in")
        let clashes = registry.register(remote, source: "MCP server \"python\"")
        #expect(clashes.map(\.description) == [
            "tool \"get_departments\" from MCP server \"python\" clashes with the one from built-in; the first one is kept",
        ])
        let tools = registry.toolBox

        let sum = try await #require(tools["add"]).execute(["a": 2, "b": 3])
        #expect(sum.content == "5")
        #expect(!sum.isError)
        let loud = try await #require(tools["shout"]).execute(["text": "São Paulo"])
        #expect(loud.content == "SÃO PAULO")
        // Our schema validation runs before the call leaves the process.
        let bad = try await #require(tools["add"]).execute(["a": "two", "b": 3])
        #expect(bad.isError)
        #expect(bad.content.contains("a"))
        // A tool that raises comes back as an error result the model can read.
        let failed = try await #require(tools["fail"]).execute([:])
        #expect(failed.isError)
        #expect(failed.content.contains("the python tool failed on purpose"))
        await connection.disconnect()
    }

    @Test("stdio: a server inherits only PATH, HOME and LANG, plus its configured env: no key, no database URL, no settings")
    func stdioEnvironment() async throws {
        // Given as this process's environment rather than set in it: other suites running now start servers
        // that read SWITCHBOARD_DATABASE, and a process-wide setenv would reach them.
        var ours = ProcessInfo.processInfo.environment
        ours["ANTHROPIC_API_KEY"] = "sk-ant-must-not-leak"
        ours["SWITCHBOARD_DATABASE"] = "postgres://user:secret@db/hr"
        ours["DATABASE_URL"] = "postgres://user:secret@db/hr"
        var spec = stdio
        spec.env = ["EXTRA_SETTING": "x"]
        let connection = MCPServerConnection(name: "python", spec: spec, logger: quietLogger, inheritedEnvironment: ours)
        let remote = try await connection.start()
        let names = try await #require(remote.first { $0.definition.name == "environment" }).execute([:]).content
            .split(separator: "\n").map(String.init)
        #expect(names.contains("PATH") && names.contains("EXTRA_SETTING"))
        #expect(!names.contains("ANTHROPIC_API_KEY"))
        #expect(!names.contains("DATABASE_URL"))
        #expect(!names.contains { $0.hasPrefix("SWITCHBOARD_") }, "\(names)")
        await connection.disconnect()
    }

    @Test("stdio: a server's standard error reaches ours a line at a time, prefixed with its name")
    func stderrPrefixed() async throws {
        let lines = Mutex<[String]>([])
        let connection = MCPServerConnection(name: "python", spec: stdio, logger: quietLogger,
                                             errorOutput: { line in lines.withLock { $0.append(line) } })
        let remote = try await connection.start()
        _ = try await #require(remote.first { $0.definition.name == "whisper" }).execute(["text": "first line\nsecond line"])
        #expect(await eventually(within: .seconds(5)) { lines.withLock { $0 }.contains("[mcp python] second line") })
        #expect(lines.withLock { $0 }.contains("[mcp python] first line"))
        await connection.disconnect()
    }

    @Test("stdio: a server that ignores SIGTERM is killed after the grace period")
    func stubbornServerKilled() async throws {
        var spec = stdio
        spec.env = ["IGNORE_SIGTERM": "1"]
        let connection = MCPServerConnection(name: "python", spec: spec, logger: quietLogger)
        _ = try await connection.start()
        let pid = try #require(connection.processIdentifier)
        await connection.disconnect()
        // Reaped by Foundation's Process: a signal 0 to it fails once it is gone.
        #expect(await eventually(within: .seconds(10)) { kill(pid, 0) != 0 })
    }

    @Test("reconnection backs off: doubling from the first pause, at most 30 s")
    func backoff() {
        let connection = MCPServerConnection(name: "x", spec: stdio, logger: quietLogger, reconnectDelay: .seconds(1))
        #expect((1...7).map { connection.delay(afterAttempts: $0) } == [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16),
                                                                          .seconds(30), .seconds(30)])
    }

    @Test("stdio: a server that dies fails its call cleanly, its tools fail while down, and it is reconnected")
    func stdioReconnect() async throws {
        let connection = MCPServerConnection(name: "python", spec: stdio, logger: quietLogger,
                                             reconnectDelay: .milliseconds(200))
        var registry = ToolRegistry()
        registry.register(try await connection.start(), source: "python")
        let tools = registry.toolBox
        try await withService(connection) {
            let started = ContinuousClock.now
            let crashed = try await #require(tools["crash"]).execute([:])
            #expect(crashed.isError)
            #expect(crashed.content.contains("python"))
            #expect(ContinuousClock.now - started < .seconds(5))

            #expect(await eventually { connection.connections == 2 && connection.isConnected })
            let sum = try await #require(tools["add"]).execute(["a": 40, "b": 2])
            #expect(sum.content == "42")
        }
    }

    @Test("stdio: cancelling a call (client gone, tool timeout) returns at once and the server stays usable")
    func stdioCancel() async throws {
        let connection = MCPServerConnection(name: "python", spec: stdio, logger: quietLogger)
        var registry = ToolRegistry()
        registry.register(try await connection.start(), source: "python")
        let tools = registry.toolBox
        let slow = try #require(tools["slow"])
        let started = ContinuousClock.now
        let call = Task { try await slow.execute(["seconds": 30]) }
        try await Task.sleep(for: .milliseconds(300))
        call.cancel()
        await #expect(throws: CancellationError.self) { try await call.value }
        #expect(ContinuousClock.now - started < .seconds(10), "returned long before the tool's 30 s")
        let sum = try await #require(tools["add"]).execute(["a": 1, "b": 1])
        #expect(sum.content == "2")
        await connection.disconnect()
    }

    @Test("stdio: a command that does not exist fails to start with a clear error")
    func missingCommand() async throws {
        let spec = MCPConfiguration.ServerSpec(command: "no-such-mcp-server-here", args: [])
        let connection = MCPServerConnection(name: "ghost", spec: spec, logger: quietLogger, connectTimeout: .seconds(3))
        await #expect(throws: (any Error).self) { try await connection.start() }
        #expect(!connection.isConnected)
    }

    @Test("Streamable HTTP: SSE and JSON answers; the server restarting is survived", arguments: ["http", "http-json"])
    func http(mode: String) async throws {
        let server = try PythonHTTPServer(mode: mode)
        defer { server.stop() }
        #expect(await server.ready())
        let connection = MCPServerConnection(name: "web", spec: .init(url: server.url), logger: quietLogger,
                                             reconnectDelay: .milliseconds(200))
        var registry = ToolRegistry()
        registry.register(try await connection.start(), source: "web")
        let tools = registry.toolBox
        #expect(registry.names.sorted() == ["add", "crash", "environment", "fail", "get_departments", "shout", "slow", "traceparent", "whisper"])
        #expect(try await #require(tools["add"]).execute(["a": 20, "b": 22]).content == "42")
        let failed = try await #require(tools["fail"]).execute([:])
        #expect(failed.isError && failed.content.contains("failed on purpose"))

        try await withService(connection) {
            server.stop()
            let down = try await #require(tools["add"]).execute(["a": 1, "b": 2])
            #expect(down.isError)
            let restarted = try PythonHTTPServer(mode: mode, port: server.port)
            defer { restarted.stop() }
            #expect(await restarted.ready())
            #expect(await eventually { connection.connections == 2 && connection.isConnected })
            #expect(try await #require(tools["add"]).execute(["a": 1, "b": 2]).content == "3")
        }
    }

    @Test("configuration: the desktop clients' format; a server with neither command nor url is refused")
    func configuration() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mcp-config-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = directory.appendingPathComponent("good.json")
        try #"{"mcpServers": {"py": {"command": "python3", "args": ["x.py"], "env": {"A": "1"}}, "web": {"url": "http://127.0.0.1:1/mcp", "headers": {"Authorization": "Bearer t"}}}}"#
            .write(to: good, atomically: true, encoding: .utf8)
        let configuration = try MCPConfiguration.load(path: good.path)
        #expect(configuration.mcpServers["py"]?.args == ["x.py"])
        #expect(configuration.mcpServers["web"]?.headers?["Authorization"] == "Bearer t")

        let bad = directory.appendingPathComponent("bad.json")
        try #"{"mcpServers": {"broken": {"args": []}}}"#.write(to: bad, atomically: true, encoding: .utf8)
        #expect(throws: ToolError.self) { try MCPConfiguration.load(path: bad.path) }
        do { _ = try MCPConfiguration.load(path: bad.path) } catch let error as ToolError {
            #expect(error.message == "\(bad.path): server \"broken\" needs either \"command\" (stdio) or \"url\" (Streamable HTTP)")
        }
    }
}
