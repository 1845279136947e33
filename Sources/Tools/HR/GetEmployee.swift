import ChatCore
import Foundation
import Storage

/// `get_employee`: one employee by id or e-mail, with manager and increment history.
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
