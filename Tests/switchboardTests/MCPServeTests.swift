import Foundation
import TestSupport
import Testing

@Suite("switchboard mcp", .enabled(if: FastMCP.available, "needs python3 with fastmcp (pip install fastmcp)"), .cpuQuiet)
struct MCPServeTests {
    @Test("an independent MCP client (fastmcp over stdio) lists and calls the same tools the stream uses")
    func fastMCPClient() throws {
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", FastMCP.clientScript, CLI.binary.path])
        #expect(result.status == 0, "\(result.stderrText)")
        let report = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])

        #expect(report["tools"] as? [String] == ["get_departments", "get_employee", "get_employees",
                                                 "get_increment_distribution", "get_salary_stats"])
        let schemas = try #require(report["schemas"] as? [String: [String: Any]])
        let employeeProperties = try #require(schemas["get_employees"]?["properties"] as? [String: Any])
        #expect(employeeProperties["min_increment_pct"] != nil)

        #expect(report["departmentsError"] as? Bool == false)
        let departments = try #require((report["departments"] as? [String: Any])?["departments"] as? [[String: Any]])
        #expect(!departments.isEmpty)
        #expect(departments.reduce(0) { $0 + ($1["headCount"] as? Int ?? 0) } == 500)

        // Bad input is refused by the schema, as an error result the client can read.
        #expect(report["badError"] as? Bool == true)
        #expect((report["badText"] as? String)?.contains("limit") == true)

        let seed = try #require(report["seed"] as? [String: Any])
        let employees = try #require(seed["employees"] as? [[String: Any]])
        #expect(employees.count == 3)
        #expect(employees.allSatisfy { (5...10).contains($0["incrementPct"] as? Double ?? -1) })
    }
}

@Suite("switchboard mcp: message bounds", .timeLimit(.minutes(1)))
struct MCPMessageBoundsTests {
    @Test("a line longer than --max-message-bytes is skipped as it arrives and answered with an error; the next message is served")
    func overlongLine() throws {
        let process = Process()
        process.executableURL = CLI.binary
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        process.arguments = ["mcp", "--max-message-bytes", "1024", "--database", directory.appendingPathComponent("hr.sqlite").path]
        let (input, output) = (Pipe(), Pipe())
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        // 3 MiB of one line (far above the limit, sent in many reads), then a well-formed request.
        let long = Data(repeating: UInt8(ascii: "x"), count: 3 << 20) + Data("\n".utf8)
        let initialize = #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}"#
        input.fileHandleForWriting.write(long + Data((initialize + "\n").utf8))
        var received = Data()
        while received.filter({ $0 == UInt8(ascii: "\n") }).count < 2 {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            received += chunk
        }
        try input.fileHandleForWriting.close()
        let lines = received.split(separator: UInt8(ascii: "\n")).map {
            (try? JSONSerialization.jsonObject(with: Data($0))) as? [String: Any] ?? [:]
        }
        #expect(lines.count == 2)
        let refusal = try #require(lines.first?["error"] as? [String: Any])
        #expect(refusal["code"] as? Int == -32600)
        #expect((refusal["message"] as? String)?.contains("\(3 << 20) bytes long; at most 1024") == true, "\(refusal)")
        #expect(lines.first?.keys.contains("id") == true && lines.first?["id"] is NSNull)
        #expect(lines.last?["id"] as? Int == 1)
        #expect((lines.last?["result"] as? [String: Any])?["serverInfo"] != nil, "\(lines)")
        #expect(process.waitForExit(), "switchboard mcp ends when its input does")
    }
}
