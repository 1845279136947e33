import Testing
import ChatCore
import Foundation
@testable import Tools

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
}

@Suite("switchboard mcp's calls")
struct MCPToolServerCallTests {
    private struct Stuck: ChatCore.Tool {
        let definition = ToolDefinition(name: "stuck", description: "", inputSchema: ["type": "object"])
        func execute(_ input: JSONValue) async throws -> ToolOutput {
            try await Task.sleep(for: .seconds(60))
            return ToolOutput(content: "never")
        }
    }

    @Test("a call past the tool timeout is cancelled and answered as an error")
    func timeout() async throws {
        let output = try await MCPToolServer.run(Stuck(), [:], timeout: .milliseconds(50))
        #expect(output.isError)
        #expect(output.content == "The tool stuck timed out after 50 ms.")
    }
}
