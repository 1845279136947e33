import Foundation
import Testing

/// Whether Python's fastmcp (installed by `.ci/run`) is here to play the MCP client.
private let fastMCPAvailable: Bool = {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", "import fastmcp"]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}()

@Suite("switchboard mcp", .enabled(if: fastMCPAvailable, "needs python3 with fastmcp (pip install fastmcp)"))
struct MCPServeTests {
    @Test("an independent MCP client (fastmcp over stdio) lists and calls the same tools the stream uses")
    func fastMCPClient() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/mcp_client.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, CLI.binary.path]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(String(decoding: stderr, as: UTF8.self))")
        let report = try #require(try JSONSerialization.jsonObject(with: stdout) as? [String: Any])

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
