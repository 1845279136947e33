import ChatCore
import Foundation
import Storage

/// `get_increment_distribution`: a histogram of one year's increment percentages, with count, mean and median.
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
