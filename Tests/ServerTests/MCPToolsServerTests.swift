import AnthropicMock
import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import TestSupport
import Testing
@testable import Server

/// Writes an MCP configuration into a temporary directory for one test; `remove()` deletes it.
private struct TemporaryMCPConfig {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-mcp-\(UUID())")
    var path: String { directory.appendingPathComponent("mcp.json").path }

    init(_ json: String) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try json.write(toFile: path, atomically: true, encoding: .utf8)
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

private let pythonServerConfig = #"{"mcpServers": {"python": {"command": "python3", "args": ["\#(FastMCP.serverScript)"]}}}"#

@Suite("MCP servers' tools in the stream", .serialized, .timeLimit(.minutes(3)), .cpuQuiet,
       .enabled(if: FastMCP.available, "needs python3 with fastmcp (pip install fastmcp)"))
struct MCPToolsServerTests {
    @Test("a configured MCP server's tools are listed, run in the stream with progress and timings, and its health shown")
    func mcpToolInStream() async throws {
        let mcpConfig = try TemporaryMCPConfig(pythonServerConfig)
        defer { mcpConfig.remove() }

        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.toolTurn(text: "Adding.", tools: [
                (id: "toolu_add", name: "add", fragments: [#"{"a": 2, "#, #""b": 3}"#]),
                (id: "toolu_shout", name: "shout", fragments: [#"{"text": "ok"}"#]),
            ])), .stream(SSE.textAnswer(["It is 5."])))
            var config = streamingConfiguration(mock)
            config.mcpConfigPath = mcpConfig.path
            let app = try await buildApplication(configuration: config)
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let tools = try await client.execute(uri: "/tools", method: .get) { try json($0.body) }
                let names = (tools["tools"] as? [[String: Any]])?.compactMap { $0["name"] as? String } ?? []
                // The built-ins and the Python server's, the clashing get_departments once (the built-in).
                #expect(names.filter { $0 == "get_departments" }.count == 1)
                #expect(Set(names).isSuperset(of: ["get_employees", "add", "shout", "crash", "fail", "slow"]))
                let sources = Dictionary(uniqueKeysWithValues: (tools["tools"] as? [[String: Any]] ?? []).map {
                    ($0["name"] as? String ?? "", $0["source"] as? String ?? "")
                })
                #expect(sources["add"] == "MCP server \"python\"")
                #expect(sources["get_departments"] == "built-in")

                let health = try await client.execute(uri: "/health", method: .get) { try json($0.body) }
                #expect(health["status"] as? String == "ok")
                #expect(health["mcpServers"] as? [String: String] == ["python": "connected"])

                let stream = try await streamChat(port: port, body: chatJSON("add two and three"))
                let progress = stream.events("tool_progress")
                #expect(progress.filter { $0["status"] as? String == "completed" }.count == 2)
                #expect(progress.filter { $0["status"] as? String == "completed" }.allSatisfy { $0["executionTimeMs"] is Int })
                #expect(stream.types.last == "complete")
                let messages = try #require(mock.received.last?.body["messages"] as? [[String: Any]])
                let results = try #require(messages.last?["content"] as? [[String: Any]])
                #expect(results.map { $0["content"] as? String } == ["5", "OK"])
                #expect(results.allSatisfy { $0["is_error"] == nil })
            }
        }
    }

    @Test("an MCP server that cannot be started stops the server from starting, naming it")
    func unreachableServer() async throws {
        let mcpConfig = try TemporaryMCPConfig(#"{"mcpServers": {"ghost": {"url": "http://127.0.0.1:1/mcp"}}}"#)
        defer { mcpConfig.remove() }
        var config = configuration(rules: nil)
        config.mcpConfigPath = mcpConfig.path
        do {
            _ = try await buildApplication(configuration: config)
            Issue.record("expected a StartupError")
        } catch let error as StartupError {
            #expect(error.description.hasPrefix("cannot start: the MCP server \"ghost\" from \(mcpConfig.path) cannot be reached"))
        }
    }

    @Test("a server that dies in a stream is reported degraded in /health and /metrics, then reconnected")
    func serverDiesAndReturns() async throws {
        let mcpConfig = try TemporaryMCPConfig(pythonServerConfig)
        defer { mcpConfig.remove() }
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream(SSE.toolTurn(text: nil, tools: [(id: "toolu_crash", name: "crash", fragments: ["{}"])])),
                         .stream(SSE.textAnswer(["The tool failed."])))
            var config = streamingConfiguration(mock)
            config.mcpConfigPath = mcpConfig.path
            let app = try await buildApplication(configuration: config)
            try await app.test(.live) { client in
                let port = try #require(client.port)
                func health() async -> [String: Any] {
                    (try? await client.execute(uri: "/health", method: .get) { try json($0.body) }) ?? [:]
                }
                func metrics() async -> String {
                    (try? await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }) ?? ""
                }
                let stream = try await streamChat(port: port, body: chatJSON("crash it"))
                // The call in flight failed cleanly, as an error result the model read; the stream went on.
                #expect(stream.events("tool_progress").last?["status"] as? String == "failed")
                #expect(stream.types.last == "complete")
                let results = try #require((mock.received.last?.body["messages"] as? [[String: Any]])?.last?["content"] as? [[String: Any]])
                #expect(results.first?["is_error"] as? Bool == true)
                // Python takes a moment to start again: the server is seen down, then back.
                #expect(await eventually(within: .seconds(3)) {
                    let state = await health()
                    return state["status"] as? String == "degraded" && state["mcpServers"] as? [String: String] == ["python": "reconnecting"]
                })
                #expect(await metrics().contains(#"switchboard_mcp_server_up{server="python"} 0.0"#))
                #expect(await eventually(within: .seconds(15)) { await health()["status"] as? String == "ok" })
                #expect(await metrics().contains(#"switchboard_mcp_server_up{server="python"} 1.0"#))
            }
        }
    }
}
