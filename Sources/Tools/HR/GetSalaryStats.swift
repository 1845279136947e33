import ChatCore
import Foundation
import Storage

/// `get_salary_stats`: salary statistics (count, min, max, mean, median) by group, now or per year.
struct GetSalaryStats: Tool {
    let database: any SQLDatabase

    static let groupColumns = ["department": "d.name", "location": "l.city", "title": "e.title", "none": "'all'"]

    let definition = ToolDefinition(
        name: "get_salary_stats",
        description: """
            Salary statistics (count, min, max, mean, median) grouped by department, location or title, for current \
            salaries or, with per_year, for the salary after each year's increment: the data behind salary charts. \
            Filters: department, location, status (default active), year range.
            """,
        inputSchema: .object([
            "type": "object",
            "additionalProperties": false,
            "properties": .object(EmployeeFilter.schema.merging([
                "group_by": .object(["type": "string", "enum": ["department", "location", "title", "none"]]),
                "per_year": .object(["type": "boolean", "description": "One row per group and year, from the increments."]),
                "from_year": .object(["type": "integer", "minimum": 2000, "maximum": 2100]),
                "to_year": .object(["type": "integer", "minimum": 2000, "maximum": 2100]),
            ]) { $1 }),
        ]))

    func execute(_ input: JSONValue) async throws -> ToolOutput {
        var filter = EmployeeFilter(input, statusDefault: "active")
        let groupBy = input["group_by"]?.stringValue ?? "department"
        // The schema allows only these; a call that skipped validation is told, not crashed on.
        guard let group = Self.groupColumns[groupBy] else {
            throw ToolError("group_by must be one of \(Self.groupColumns.keys.sorted().joined(separator: ", ")), not \(groupBy).")
        }
        let perYear = input["per_year"] == .bool(true)
        let rows: [SQLRow]
        if perYear {
            if let from = input["from_year"]?.intValue { filter.add("i.year >= ?", .int(Int64(from))) }
            if let to = input["to_year"]?.intValue { filter.add("i.year <= ?", .int(Int64(to))) }
            rows = try await database.fetch("SELECT \(group) AS grp, i.year AS year, i.new_salary AS value" + employeeJoins
                                             + " JOIN salary_increments i ON i.employee_id = e.id" + filter.whereClause, filter.arguments)
        } else {
            rows = try await database.fetch("SELECT \(group) AS grp, e.salary AS value" + employeeJoins + filter.whereClause,
                                            filter.arguments)
        }
        var values: [String: [Double]] = [:]
        for row in rows {
            let key = (row["grp"]?.text ?? "") + (perYear ? "\u{0}\(row["year"]?.int ?? 0)" : "")
            values[key, default: []].append(row["value"]?.double ?? 0)
        }
        let groups: [JSONValue] = values.sorted(by: { $0.key < $1.key }).compactMap { key, groupValues in
            let sorted = groupValues.sorted()
            guard let lowest = sorted.first, let highest = sorted.last else { return nil }
            let parts = key.split(separator: "\u{0}", omittingEmptySubsequences: false)
            var fields: [String: JSONValue] = [
                "group": .string(String(parts[0])), "count": .number(Double(sorted.count)),
                "min": .number(lowest), "max": .number(highest),
                "mean": rounded(sorted.reduce(0, +) / Double(sorted.count)), "median": rounded(median(sorted)),
            ]
            if perYear, parts.count > 1 { fields["year"] = .number(Double(parts[1]) ?? 0) }
            return .object(fields)
        }
        return try resultJSON(.object(["groupBy": .string(groupBy), "perYear": .bool(perYear), "groups": .array(groups)]))
    }
}
