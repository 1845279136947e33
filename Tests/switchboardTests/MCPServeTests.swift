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
