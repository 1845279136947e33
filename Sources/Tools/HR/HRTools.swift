import ChatCore
import Foundation

/// The HR tools the model can call, all on one `SQLDatabase`.
public enum HRTools {
    public static func all(database: any SQLDatabase) -> [any Tool] {
        [GetEmployees(database: database), GetEmployee(database: database), GetDepartments(database: database),
         GetSalaryStats(database: database), GetIncrementDistribution(database: database)]
    }
}

// MARK: Shared pieces

/// Filters several tools share, turned into SQL conditions with every value as an argument.
struct EmployeeFilter {
    var conditions: [String] = []
    var arguments: [SQLValue] = []

    static let schema: [String: JSONValue] = [
        "department": .object(["type": "string", "description": "Department name, e.g. \"Engineering\" (case-insensitive)."]),
        "location": .object(["type": "string", "description": "City or country, e.g. \"Berlin\" or \"Germany\"."]),
        "status": .object(["type": "string", "enum": ["active", "on_leave", "terminated"],
                           "description": "Employment status."]),
    ]

    init(_ input: JSONValue, statusDefault: String? = nil) {
        if let department = input["department"]?.stringValue {
            conditions.append("LOWER(d.name) = ?")
            arguments.append(.text(department.lowercased()))
        }
        if let location = input["location"]?.stringValue {
            conditions.append("(LOWER(l.city) = ? OR LOWER(l.country) = ?)")
            arguments += [.text(location.lowercased()), .text(location.lowercased())]
        }
        if let status = input["status"]?.stringValue ?? statusDefault {
            conditions.append("e.status = ?")
            arguments.append(.text(status))
        }
    }

    mutating func add(_ condition: String, _ values: SQLValue...) {
        conditions.append(condition)
        arguments += values
    }

    var whereClause: String { conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ") }
}

let employeeJoins = " FROM employees e JOIN departments d ON d.id = e.department_id JOIN locations l ON l.id = e.location_id"

/// The latest year with increments: the default year for increment questions.
func latestIncrementYear(_ database: any SQLDatabase) async throws -> Int {
    try await database.fetch("SELECT MAX(year) AS y FROM salary_increments", []).first?["y"]?.int ?? 0
}

/// JSON text for a tool result, keys sorted so results are stable.
func resultJSON(_ value: JSONValue) throws -> ToolOutput {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return ToolOutput(content: String(decoding: try encoder.encode(value), as: UTF8.self))
}

func rounded(_ value: Double, _ places: Double = 2) -> JSONValue {
    let factor = pow(10, places)
    return .number((value * factor).rounded() / factor)
}

func median(_ sorted: [Double]) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

func employeeJSON(_ row: SQLRow) -> JSONValue {
    var fields: [String: JSONValue] = [
        "id": .number(Double(row["id"]?.int ?? 0)),
        "name": .string("\(row["first_name"]?.text ?? "") \(row["last_name"]?.text ?? "")"),
        "email": .string(row["email"]?.text ?? ""),
        "title": .string(row["title"]?.text ?? ""),
        "department": .string(row["department"]?.text ?? ""),
        "location": .string("\(row["city"]?.text ?? ""), \(row["country"]?.text ?? "")"),
        "hireDate": .string(row["hire_date"]?.text ?? ""),
        "status": .string(row["status"]?.text ?? ""),
        "salary": .number(Double(row["salary"]?.int ?? 0)),
    ]
    if let percentage = row["increment_pct"]?.double { fields["incrementPct"] = .number(percentage) }
    return .object(fields)
}

let employeeColumns = "SELECT e.id, e.first_name, e.last_name, e.email, e.title, d.name AS department, l.city, l.country, "
    + "e.hire_date, e.status, e.salary"

// MARK: get_employees

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

        let sort = Self.sortColumns[input["sort_by"]?.stringValue ?? "name"]!
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

// MARK: get_employee

struct GetEmployee: Tool {
    let database: any SQLDatabase

    let definition = ToolDefinition(
        name: "get_employee",
        description: "One employee by id or e-mail, with manager, number of direct reports and salary increment history.",
        inputSchema: .object([
            "type": "object",
            "additionalProperties": false,
            "properties": .object([
                "id": .object(["type": "integer", "minimum": 1]),
                "email": .object(["type": "string"]),
            ]),
        ]))

    func execute(_ input: JSONValue) async throws -> ToolOutput {
        let condition: String
        let argument: SQLValue
        switch (input["id"]?.intValue, input["email"]?.stringValue) {
        case (let id?, nil): (condition, argument) = ("e.id = ?", .int(Int64(id)))
        case (nil, let email?): (condition, argument) = ("LOWER(e.email) = ?", .text(email.lowercased()))
        default: throw ToolError("Give exactly one of id or email.")
        }
        guard let row = try await database.fetch(employeeColumns + ", e.manager_id" + employeeJoins + " WHERE " + condition,
                                                 [argument]).first else {
            throw ToolError("No employee with \(input["id"] != nil ? "id \(input["id"]!.intValue ?? 0)" : "e-mail \(input["email"]?.stringValue ?? "")").")
        }
        guard case .object(var fields) = employeeJSON(row) else { return ToolOutput(content: "{}") }
        let id = Int64(row["id"]?.int ?? 0)
        if let managerId = row["manager_id"]?.int,
           let manager = try await database.fetch("SELECT id, first_name, last_name, title FROM employees WHERE id = ?",
                                                  [.int(Int64(managerId))]).first {
            fields["manager"] = .object(["id": .number(Double(managerId)),
                                         "name": .string("\(manager["first_name"]?.text ?? "") \(manager["last_name"]?.text ?? "")"),
                                         "title": .string(manager["title"]?.text ?? "")])
        } else {
            fields["manager"] = .null
        }
        let reports = try await database.fetch("SELECT COUNT(*) AS n FROM employees WHERE manager_id = ?", [.int(id)])
        fields["directReports"] = .number(Double(reports.first?["n"]?.int ?? 0))
        let increments = try await database.fetch(
            "SELECT year, effective_date, percentage, previous_salary, new_salary FROM salary_increments WHERE employee_id = ? ORDER BY year",
            [.int(id)])
        fields["increments"] = .array(increments.map { row in
            .object(["year": .number(Double(row["year"]?.int ?? 0)), "effectiveDate": .string(row["effective_date"]?.text ?? ""),
                     "percentage": .number(row["percentage"]?.double ?? 0),
                     "previousSalary": .number(Double(row["previous_salary"]?.int ?? 0)),
                     "newSalary": .number(Double(row["new_salary"]?.int ?? 0))])
        })
        return try resultJSON(.object(fields))
    }
}

// MARK: get_departments

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

// MARK: get_salary_stats

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
        let group = Self.groupColumns[groupBy]!
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
        let groups: [JSONValue] = values.keys.sorted().map { key in
            let sorted = values[key]!.sorted()
            let parts = key.split(separator: "\u{0}", omittingEmptySubsequences: false)
            var fields: [String: JSONValue] = [
                "group": .string(String(parts[0])), "count": .number(Double(sorted.count)),
                "min": .number(sorted.first!), "max": .number(sorted.last!),
                "mean": rounded(sorted.reduce(0, +) / Double(sorted.count)), "median": rounded(median(sorted)),
            ]
            if perYear, parts.count > 1 { fields["year"] = .number(Double(parts[1]) ?? 0) }
            return .object(fields)
        }
        return try resultJSON(.object(["groupBy": .string(groupBy), "perYear": .bool(perYear), "groups": .array(groups)]))
    }
}

// MARK: get_increment_distribution

struct GetIncrementDistribution: Tool {
    let database: any SQLDatabase

    let definition = ToolDefinition(
        name: "get_increment_distribution",
        description: """
            A histogram of salary increment percentages in a year (default: the latest), with count, mean and median; \
            filters: department, location, status. bucket_width sets the bar width in percentage points (default 1).
            """,
        inputSchema: .object([
            "type": "object",
            "additionalProperties": false,
            "properties": .object(EmployeeFilter.schema.merging([
                "year": .object(["type": "integer", "minimum": 2000, "maximum": 2100]),
                "bucket_width": .object(["type": "number", "minimum": 0.5, "maximum": 10]),
            ]) { $1 }),
        ]))

    func execute(_ input: JSONValue) async throws -> ToolOutput {
        var filter = EmployeeFilter(input)
        var year = input["year"]?.intValue ?? 0
        if year == 0 { year = try await latestIncrementYear(database) }
        filter.add("i.year = ?", .int(Int64(year)))
        let width: Double
        if case .number(let value)? = input["bucket_width"] { width = value } else { width = 1 }
        let rows = try await database.fetch("SELECT i.percentage AS value" + employeeJoins
                                            + " JOIN salary_increments i ON i.employee_id = e.id" + filter.whereClause, filter.arguments)
        let sorted = rows.compactMap { $0["value"]?.double }.sorted()
        var buckets: [JSONValue] = []
        if let low = sorted.first, let high = sorted.last {
            var start = (low / width).rounded(.down) * width
            var index = 0
            while start <= high {
                let end = start + width
                var count = 0
                while index < sorted.count, sorted[index] < end { count += 1; index += 1 }
                buckets.append(.object(["from": rounded(start), "to": rounded(end), "count": .number(Double(count))]))
                start = end
            }
        }
        return try resultJSON(.object([
            "year": .number(Double(year)), "count": .number(Double(sorted.count)), "bucketWidth": .number(width),
            "mean": sorted.isEmpty ? .null : rounded(sorted.reduce(0, +) / Double(sorted.count)),
            "median": sorted.isEmpty ? .null : rounded(median(sorted)), "buckets": .array(buckets),
        ]))
    }
}
