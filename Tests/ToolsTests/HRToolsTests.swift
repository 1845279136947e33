import ChatCore
import Foundation
import Storage
import Testing
@testable import Tools

/// The databases the tool suite (and the stream records' suite, which shares them) runs on: SQLite always, PostgreSQL when `SWITCHBOARD_TEST_POSTGRES_URL` names
/// one (`.ci/run` starts it with scripts/test-postgres.sh).
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    static var available: [Backend] {
        ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_POSTGRES_URL"] == nil ? [.sqlite] : [.sqlite, .postgres]
    }

    var testDescription: String { rawValue }

    /// The shared seeded database of this kind (read-only tests share it).
    var database: any SQLDatabase {
        get async throws {
            switch self {
            case .sqlite: try await sharedSQLite.value
            case .postgres: try await sharedPostgres.value
            }
        }
    }
}

private let sharedSQLite: Task<any SQLDatabase, Error> = Task {
    let database = try SQLiteDatabase()
    try await HRSchema.prepare(database)
    _ = try await StreamRecords.databaseSchema.prepare(database)
    return database
}

/// A fresh schema in the test server's database, with the pool running for the rest of the test process.
private let sharedPostgres: Task<any SQLDatabase, Error> = Task {
    let url = ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_POSTGRES_URL"] ?? ""
    let database = try PostgresDatabase(url: url)
    Task { try await database.run() }
    try await database.transaction(["stream_feedback", "stream_records", "salary_increments", "employees", "locations", "departments", "schema_migrations"]
        .map { ("DROP TABLE IF EXISTS \($0)", []) })
    try await HRSchema.prepare(database)
    _ = try await StreamRecords.databaseSchema.prepare(database)
    return database
}

private func call(_ name: String, _ input: JSONValue, on backend: Backend) async throws -> (ToolOutput, JSONValue) {
    var registry = ToolRegistry()
    registry.register(HRTools.all(database: try await backend.database), source: "built-in")
    let tool = try #require(registry.toolBox[name])
    let output = try await tool.execute(input)
    let json = (try? JSONValue(parsing: output.content)) ?? .null
    return (output, json)
}

private func numbers(_ value: JSONValue?, _ key: String) -> [Double] {
    guard case .array(let items)? = value else { return [] }
    return items.compactMap { if case .number(let n)? = $0[key] { return n } else { return nil } }
}

@Suite("HR database")
struct HRDatabaseTests {
    @Test("migrates and seeds once, the same data every time")
    func seeding() async throws {
        let first = try SQLiteDatabase()
        #expect(try await HRSchema.prepare(first))
        #expect(try await !HRSchema.prepare(first))
        let second = try SQLiteDatabase()
        try await HRSchema.prepare(second)
        let fingerprint = "SELECT COUNT(*) AS n, SUM(salary) AS s, (SELECT COUNT(*) FROM salary_increments) AS i, "
            + "(SELECT SUM(percentage) FROM salary_increments) AS p FROM employees"
        let a = try await first.fetch(fingerprint, [])
        let b = try await second.fetch(fingerprint, [])
        #expect(a == b)
        #expect(a.first?["n"]?.int == 500)
        #expect((a.first?["i"]?.int ?? 0) > 1_500)
        let departments = try await first.fetch("SELECT COUNT(*) AS n FROM departments", [])
        #expect(departments.first?["n"]?.int == 8)
    }

    @Test("PostgreSQL holds the same data as SQLite", .enabled(if: Backend.available.contains(.postgres)))
    func sameDataOnBoth() async throws {
        let query = "SELECT COUNT(*) AS n, SUM(salary) AS s, MIN(hire_date) AS first, MAX(email) AS last, "
            + "(SELECT COUNT(*) FROM salary_increments) AS i, (SELECT SUM(new_salary) FROM salary_increments) AS t FROM employees"
        let sqlite = try await Backend.sqlite.database.fetch(query, [])
        let postgres = try await Backend.postgres.database.fetch(query, [])
        #expect(sqlite == postgres)
    }

    @Test("a database file survives a restart without reseeding")
    func fileDatabase() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hr-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("nested/hr.sqlite").path
        #expect(try await HRSchema.prepare(SQLiteDatabase(path: path)))
        #expect(try await !HRSchema.prepare(SQLiteDatabase(path: path)))
    }
}

@Suite("HR tools")
struct HRToolsTests {
    @Test("a handler called without the registry's validation throws on an unknown sort or group, never traps",
          arguments: Backend.available)
    func unvalidatedCalls(backend: Backend) async throws {
        let tools = Dictionary(uniqueKeysWithValues: HRTools.all(database: try await backend.database).map { ($0.definition.name, $0) })
        for (name, input) in [("get_employees", ["sort_by": "salary; DROP TABLE employees"] as JSONValue),
                              ("get_salary_stats", ["group_by": "ssn"] as JSONValue)] {
            let tool = try #require(tools[name])
            await #expect(throws: ToolError.self) { _ = try await tool.execute(input) }
        }
    }

    @Test("get_employees: the seed's 5-10% increment question", arguments: Backend.available)
    func incrementRange(backend: Backend) async throws {
        let (output, json) = try await call("get_employees", ["min_increment_pct": 5, "max_increment_pct": 10, "limit": 200], on: backend)
        #expect(!output.isError, "\(output.content)")
        let pcts = numbers(json["employees"], "incrementPct")
        #expect(!pcts.isEmpty)
        #expect(pcts.allSatisfy { (5...10).contains($0) })
        let database = try await backend.database
        let expected = try await database.fetch(
            "SELECT COUNT(*) AS n FROM salary_increments WHERE year = 2025 AND percentage BETWEEN 5 AND 10", [])
        #expect(json["total"] == .number(Double(expected.first?["n"]?.int ?? -1)))
        #expect(json["incrementYear"] == 2025)
    }

    @Test("get_employees filters", arguments: Backend.available, [
        (["department": "engineering"] as JSONValue, "department", "Engineering"),
        (["location": "são paulo"] as JSONValue, "location", "São Paulo, Brazil"),
        (["location": "germany"] as JSONValue, "location", "Berlin, Germany"),
        (["status": "on_leave"] as JSONValue, "status", "on_leave"),
    ])
    func filters(backend: Backend, example: (JSONValue, String, String)) async throws {
        let (input, field, value) = example
        let (output, json) = try await call("get_employees", input, on: backend)
        #expect(!output.isError, "\(output.content)")
        guard case .array(let employees)? = json["employees"] else { Issue.record("no employees"); return }
        #expect(!employees.isEmpty)
        #expect(employees.allSatisfy { $0[field]?.stringValue == value })
    }

    @Test("get_employees: title text, hire dates, salary range, sorting and paging", arguments: Backend.available)
    func moreFilters(backend: Backend) async throws {
        let (_, seniors) = try await call("get_employees", ["title": "senior", "hired_after": "2020-01-01", "hired_before": "2023-12-31",
                                                              "min_salary": 60000, "max_salary": 120000, "sort_by": "salary",
                                                              "sort_order": "desc", "limit": 200], on: backend)
        guard case .array(let employees)? = seniors["employees"] else { Issue.record("no employees"); return }
        #expect(!employees.isEmpty)
        for employee in employees {
            #expect(employee["title"]?.stringValue?.lowercased().contains("senior") == true)
            let hired = employee["hireDate"]?.stringValue ?? ""
            #expect(hired >= "2020-01-01" && hired <= "2023-12-31")
        }
        let salaries = numbers(seniors["employees"], "salary")
        #expect(salaries == salaries.sorted(by: >))
        #expect(salaries.allSatisfy { (60000...120000).contains($0) })

        let (_, page1) = try await call("get_employees", ["limit": 10, "offset": 0], on: backend)
        let (_, page2) = try await call("get_employees", ["limit": 10, "offset": 10], on: backend)
        let ids1 = numbers(page1["employees"], "id")
        let ids2 = numbers(page2["employees"], "id")
        #expect(ids1.count == 10 && ids2.count == 10)
        #expect(Set(ids1).isDisjoint(with: ids2))
        #expect(page1["total"] == 500)
    }

    @Test("input never reaches the SQL text", arguments: Backend.available, [
        ["department": "x' OR '1'='1"] as JSONValue,
        ["title": "%"] as JSONValue,
        ["location": "Berlin'; DROP TABLE employees; --"] as JSONValue,
    ])
    func injection(backend: Backend, input: JSONValue) async throws {
        let (output, json) = try await call("get_employees", input, on: backend)
        #expect(!output.isError)
        #expect(json["total"] == 0)
        let database = try await backend.database
        #expect(try await database.fetch("SELECT COUNT(*) AS n FROM employees", []).first?["n"]?.int == 500)
    }

    @Test("bad input gets a message the model can act on", arguments: Backend.available, [
        ("get_employees", ["limit": "ten"] as JSONValue, "input.limit: expected a whole number, got \"ten\""),
        ("get_employees", ["limit": 500] as JSONValue, "input.limit: must be at most 200, got 500"),
        ("get_employees", ["departmnt": "Sales"] as JSONValue, "input.departmnt: unknown field"),
        ("get_employees", ["status": "retired"] as JSONValue, "input.status: must be one of \"active\", \"on_leave\", \"terminated\""),
        ("get_employees", ["hired_after": "01/02/2020"] as JSONValue, "input.hired_after: expected a date as YYYY-MM-DD"),
        ("get_employees", ["min_increment_pct": 10, "max_increment_pct": 5] as JSONValue, "is greater than max_increment_pct"),
        ("get_employee", [:] as JSONValue, "Give exactly one of id or email."),
        ("get_employee", ["id": 99999] as JSONValue, "No employee with id 99999."),
        ("get_salary_stats", ["group_by": "colour"] as JSONValue, "input.group_by: must be one of"),
    ])
    func badInput(backend: Backend, example: (String, JSONValue, String)) async throws {
        let (tool, input, message) = example
        let (output, _) = try await call(tool, input, on: backend)
        #expect(output.isError)
        #expect(output.content.contains(message), "\(output.content)")
    }

    @Test("get_employee by id and by e-mail, with manager and increments", arguments: Backend.available)
    func employee(backend: Backend) async throws {
        let (_, byId) = try await call("get_employee", ["id": 42], on: backend)
        #expect(byId["id"] == 42)
        let email = try #require(byId["email"]?.stringValue)
        let (_, byEmail) = try await call("get_employee", ["email": .string(email.uppercased())], on: backend)
        #expect(byEmail == byId)
        #expect(byId["manager"]?["name"]?.stringValue?.isEmpty == false)
        let years = numbers(byId["increments"], "year")
        #expect(years == years.sorted())
        let (_, head) = try await call("get_employee", ["id": 1], on: backend)
        #expect(head["manager"] == .null)
        #expect((head["directReports"].flatMap { if case .number(let n) = $0 { n } else { nil } } ?? 0) > 0)
    }

    @Test("get_departments: head counts add up to everyone", arguments: Backend.available)
    func departments(backend: Backend) async throws {
        let (_, json) = try await call("get_departments", [:], on: backend)
        let counts = numbers(json["departments"], "headCount")
        #expect(counts.count == 8)
        #expect(counts.reduce(0, +) == 500)
        guard case .array(let departments)? = json["departments"] else {
            Issue.record("no departments array: \(json)")
            return
        }
        #expect(departments.allSatisfy { $0["head"]?.stringValue?.isEmpty == false })
    }

    @Test("get_salary_stats: groups, medians, and a series per year", arguments: Backend.available)
    func salaryStats(backend: Backend) async throws {
        let (_, json) = try await call("get_salary_stats", ["group_by": "department", "department": "Legal"], on: backend)
        guard case .array(let groups)? = json["groups"] else { Issue.record("no groups"); return }
        #expect(groups.count == 1)
        let database = try await backend.database
        let salaries = try await database.fetch(
            "SELECT e.salary FROM employees e JOIN departments d ON d.id = e.department_id WHERE d.name = 'Legal' AND e.status = 'active' ORDER BY e.salary", [])
            .compactMap { $0["salary"]?.double }
        #expect(groups[0]["count"] == .number(Double(salaries.count)))
        #expect(groups[0]["min"] == .number(salaries.first!))
        #expect(groups[0]["max"] == .number(salaries.last!))
        let middle = salaries.count / 2
        let median = salaries.count % 2 == 1 ? salaries[middle] : (salaries[middle - 1] + salaries[middle]) / 2
        #expect(groups[0]["median"] == .number((median * 100).rounded() / 100))

        let (_, series) = try await call("get_salary_stats", ["group_by": "location", "per_year": true, "from_year": 2023], on: backend)
        let years = Set(numbers(series["groups"], "year"))
        #expect(years == [2023, 2024, 2025])
    }

    @Test("get_increment_distribution: buckets add up and cover the range", arguments: Backend.available)
    func distribution(backend: Backend) async throws {
        let (_, json) = try await call("get_increment_distribution", ["bucket_width": 2.5], on: backend)
        #expect(json["year"] == 2025)
        let counts = numbers(json["buckets"], "count")
        #expect(counts.reduce(0, +) == (json["count"].flatMap { if case .number(let n) = $0 { n } else { nil } } ?? -1))
        let froms = numbers(json["buckets"], "from")
        #expect(zip(froms, froms.dropFirst()).allSatisfy { $1 - $0 == 2.5 })
    }
}

@Suite("Tool registry")
struct ToolRegistryTests {
    struct Echo: Tool {
        let name: String
        let size: Int
        var definition: ToolDefinition { ToolDefinition(name: name, description: "", inputSchema: ["type": "object"]) }
        func execute(_ input: JSONValue) async throws -> ToolOutput { ToolOutput(content: String(repeating: "é", count: size)) }
    }

    @Test("a name clash is reported and the first tool kept")
    func clash() {
        var registry = ToolRegistry()
        #expect(registry.register([Echo(name: "a", size: 1), Echo(name: "b", size: 1)], source: "built-in").isEmpty)
        let clashes = registry.register([Echo(name: "a", size: 2)], source: "mcp:files")
        #expect(clashes.map(\.description) == ["tool \"a\" from mcp:files clashes with the one from built-in; the first one is kept"])
        #expect(registry.names == ["a", "b"])
    }

    @Test("results over the limit are cut, flagged, and say how to ask for less")
    func cap() async throws {
        var registry = ToolRegistry(maxResultBytes: 101)
        registry.register([Echo(name: "big", size: 100)], source: "built-in")
        let output = try await registry.toolBox["big"]!.execute([:])
        #expect(output.truncated)
        #expect(output.content.hasPrefix(String(repeating: "é", count: 50) + "\n[truncated: the result was 200 bytes"))
    }
}
