import ChatCore
import Foundation
import Storage

/// `get_employees`: employees matching the shared filters, sorted and paged.
struct GetEmployees: Tool {
    let database: any SQLDatabase

    /// Sort keys and their SQL: fixed fragments, chosen by name, so no input reaches the SQL text.
    /// `%@` takes the direction; employees without an increment that year sort last either way.
    static let sortColumns: [String: String] = [
        "name": "e.last_name %@, e.first_name %@", "salary": "e.salary %@", "hire_date": "e.hire_date %@",
        "increment_pct": "(i.percentage IS NULL), i.percentage %@", "department": "d.name %@",
    ]

    let definition = ToolDefinition(
        name: "get_employees",
        description: """
            List employees with filters: department, location (city or country), title text, status, hire-date range, \
            salary range, and salary increment percentage range in a year (e.g. 5 to 10 for "5-10% increment"; the year \
            defaults to the latest). Sorted and paged; returns the total matching and one page of employees with their \
            increment percentage for that year.
            """,
        inputSchema: .object([
            "type": "object",
            "additionalProperties": false,
            "properties": .object(EmployeeFilter.schema.merging([
                "title": .object(["type": "string", "description": "Text the job title contains, e.g. \"engineer\"."]),
                "hired_after": .object(["type": "string", "format": "date", "description": "Hired on or after, YYYY-MM-DD."]),
                "hired_before": .object(["type": "string", "format": "date", "description": "Hired on or before, YYYY-MM-DD."]),
                "min_increment_pct": .object(["type": "number", "minimum": 0, "maximum": 100]),
                "max_increment_pct": .object(["type": "number", "minimum": 0, "maximum": 100]),
                "increment_year": .object(["type": "integer", "minimum": 2000, "maximum": 2100,
                                           "description": "Year of the increment; defaults to the latest year."]),
                "min_salary": .object(["type": "integer", "minimum": 0]),
                "max_salary": .object(["type": "integer", "minimum": 0]),
                "sort_by": .object(["type": "string", "enum": ["name", "salary", "hire_date", "increment_pct", "department"]]),
                "sort_order": .object(["type": "string", "enum": ["asc", "desc"]]),
                "limit": .object(["type": "integer", "minimum": 1, "maximum": 200, "description": "Page size, default 50."]),
                "offset": .object(["type": "integer", "minimum": 0]),
            ]) { $1 }),
        ]))

    func execute(_ input: JSONValue) async throws -> ToolOutput {
        var filter = EmployeeFilter(input)
        var year = input["increment_year"]?.intValue ?? 0
        if year == 0 { year = try await latestIncrementYear(database) }
        if let title = input["title"]?.stringValue {
            filter.add("LOWER(e.title) LIKE ? ESCAPE '\\'", .text("%" + escapeLike(title.lowercased()) + "%"))
        }
        if let after = input["hired_after"]?.stringValue { filter.add("e.hire_date >= ?", .text(after)) }
        if let before = input["hired_before"]?.stringValue { filter.add("e.hire_date <= ?", .text(before)) }
        if let minimum = input["min_salary"]?.intValue { filter.add("e.salary >= ?", .int(Int64(minimum))) }
        if let maximum = input["max_salary"]?.intValue { filter.add("e.salary <= ?", .int(Int64(maximum))) }
        if case .number(let minimum)? = input["min_increment_pct"] { filter.add("i.percentage >= ?", .double(minimum)) }
        if case .number(let maximum)? = input["max_increment_pct"] { filter.add("i.percentage <= ?", .double(maximum)) }
        if case .number(let minimum)? = input["min_increment_pct"], case .number(let maximum)? = input["max_increment_pct"],
           minimum > maximum {
            throw ToolError("min_increment_pct (\(minimum)) is greater than max_increment_pct (\(maximum)).")
        }
        let from = employeeJoins + " LEFT JOIN salary_increments i ON i.employee_id = e.id AND i.year = ?"
        let arguments = [SQLValue.int(Int64(year))] + filter.arguments
        let total = try await database.fetch("SELECT COUNT(*) AS n" + from + filter.whereClause, arguments).first?["n"]?.int ?? 0

        let sortBy = input["sort_by"]?.stringValue ?? "name"
        // The schema allows only these; a call that skipped validation is told, not crashed on.
        guard let sort = Self.sortColumns[sortBy] else {
            throw ToolError("sort_by must be one of \(Self.sortColumns.keys.sorted().joined(separator: ", ")), not \(sortBy).")
        }
        let order = input["sort_order"]?.stringValue == "desc" ? "DESC" : "ASC"
        let orderBy = sort.replacingOccurrences(of: "%@", with: order)
        let limit = input["limit"]?.intValue ?? 50
        let offset = input["offset"]?.intValue ?? 0
        let rows = try await database.fetch(
            employeeColumns + ", i.percentage AS increment_pct" + from + filter.whereClause
                + " ORDER BY \(orderBy), e.id LIMIT ? OFFSET ?",
            arguments + [.int(Int64(limit)), .int(Int64(offset))])
        return try resultJSON(.object([
            "total": .number(Double(total)), "count": .number(Double(rows.count)), "offset": .number(Double(offset)),
            "incrementYear": .number(Double(year)), "employees": .array(rows.map(employeeJSON)),
        ]))
    }

    private func escapeLike(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
    }
}
