import ChatCore
import Foundation
import Storage

// Pieces the HR tools share: the employee filter, joins and columns, result JSON, rounding and medians.

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
    return ToolOutput(content: String(decoding: try JSONEncoder.sortedKeys.encode(value), as: UTF8.self))
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
