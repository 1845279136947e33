import ChatCore
import Foundation
import Storage

/// `get_departments`: every department with its head counts (everyone, and active only) and its head.
struct GetDepartments: Tool {
    let database: any SQLDatabase

    let definition = ToolDefinition(
        name: "get_departments",
        description: "All departments with their head counts (everyone, and active employees only) and their head.",
        inputSchema: .object(["type": "object", "additionalProperties": false, "properties": .object([:])]))

    func execute(_ input: JSONValue) async throws -> ToolOutput {
        let rows = try await database.fetch("""
            SELECT d.id, d.name, COUNT(e.id) AS head_count,
                   SUM(CASE WHEN e.status = 'active' THEN 1 ELSE 0 END) AS active_count,
                   MIN(CASE WHEN e.manager_id IS NULL THEN e.first_name || ' ' || e.last_name END) AS head
            FROM departments d LEFT JOIN employees e ON e.department_id = d.id
            GROUP BY d.id, d.name ORDER BY d.name
            """, [])
        return try resultJSON(.object(["departments": .array(rows.map { row in
            .object(["id": .number(Double(row["id"]?.int ?? 0)), "name": .string(row["name"]?.text ?? ""),
                     "headCount": .number(Double(row["head_count"]?.int ?? 0)),
                     "activeCount": .number(Double(row["active_count"]?.int ?? 0)),
                     "head": row["head"]?.text.map(JSONValue.string) ?? .null])
        })]))
    }
}
