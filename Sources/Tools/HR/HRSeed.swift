import ChatCore
import Storage

/// Deterministic demo data: 500 employees in 8 departments and 6 cities, with managers, statuses and
/// salary increments for 2021–2025. The same rows every time, on every database.
enum HRSeed {
    static let employeeCount = 500
    static let firstYear = 2021
    static let lastYear = 2025

    static let departments = ["Engineering", "Sales", "Marketing", "Finance", "Human Resources", "Operations",
                              "Customer Support", "Legal"]
    static let locations: [(city: String, country: String, factor: Double)] = [
        ("Berlin", "Germany", 1.0), ("London", "United Kingdom", 1.15), ("New York", "United States", 1.35),
        ("São Paulo", "Brazil", 0.55), ("Bangalore", "India", 0.4), ("Toronto", "Canada", 1.05),
    ]
    static let roles: [String: [String]] = [
        "Engineering": ["Software Engineer", "Data Engineer", "QA Engineer", "DevOps Engineer", "Data Scientist"],
        "Sales": ["Account Executive", "Sales Development Representative", "Sales Engineer"],
        "Marketing": ["Marketing Specialist", "Content Strategist", "Product Marketing Manager"],
        "Finance": ["Financial Analyst", "Accountant", "Controller"],
        "Human Resources": ["HR Generalist", "Recruiter", "People Partner"],
        "Operations": ["Operations Analyst", "Project Manager", "Facilities Coordinator"],
        "Customer Support": ["Support Specialist", "Customer Success Manager"],
        "Legal": ["Legal Counsel", "Paralegal", "Compliance Officer"],
    ]
    static let baseSalary: [String: Double] = [
        "Engineering": 78_000, "Sales": 62_000, "Marketing": 58_000, "Finance": 66_000, "Human Resources": 55_000,
        "Operations": 54_000, "Customer Support": 44_000, "Legal": 82_000,
    ]
    static let firstNames = ["Ana", "Ben", "Carla", "David", "Elif", "Farah", "Gustavo", "Hannah", "Ivan", "Julia", "Kenji",
                             "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Samir", "Tara", "Uwe", "Valentina",
                             "Wei", "Ximena", "Yusuf", "Zoe", "Arjun", "Beatriz", "Chloé", "Dmitri", "Emma", "Felix"]
    static let lastNames = ["Almeida", "Becker", "Chen", "Dubois", "Evans", "Fischer", "García", "Hoffmann", "Iyer", "Jensen",
                            "Kowalski", "López", "Müller", "Nakamura", "Okafor", "Patel", "Quinn", "Rossi", "Schmidt", "Tanaka",
                            "Usman", "Varga", "Wagner", "Xu", "Yilmaz", "Zimmermann", "Silva", "Singh", "Brown", "Kim", "Novak"]

    struct Generator {
        var base: SplitMix64
        init(state: UInt64) { base = SplitMix64(seed: state) }
        mutating func next() -> UInt64 { base.next() }
        mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
        mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    }

    /// The INSERT statements for the whole data set, rows batched per statement.
    static func statements() -> [(sql: String, arguments: [SQLValue])] {
        var random = Generator(state: 20_251_125)
        var statements: [(String, [SQLValue])] = []
        statements.append(batch("INSERT INTO departments (id, name) VALUES", columns: 2,
                                rows: departments.enumerated().map { [.int(Int64($0.offset + 1)), .text($0.element)] }))
        statements.append(batch("INSERT INTO locations (id, city, country) VALUES", columns: 3,
                                rows: locations.enumerated().map { [.int(Int64($0.offset + 1)), .text($0.element.city), .text($0.element.country)] }))

        var employees: [[SQLValue]] = []
        var increments: [[SQLValue]] = []
        var heads: [Int: Int] = [:]          // department index → head's id
        var leads: [Int: [Int]] = [:]        // department index → lead ids
        var incrementId = 1
        for index in 0..<employeeCount {
            let id = index + 1
            let department = index < departments.count ? index : weightedDepartment(&random)
            let location = random.int(0...(locations.count - 1))
            let first = firstNames[random.int(0...(firstNames.count - 1))]
            let last = lastNames[random.int(0...(lastNames.count - 1))]
            let email = "\(ascii(first)).\(ascii(last)).\(id)@example.com".lowercased()
            let departmentName = departments[department]
            let title: String
            let level: Double
            let manager: Int?
            if heads[department] == nil {
                title = "Head of \(departmentName)"
                level = 2.1
                manager = nil
                heads[department] = id
            } else if (leads[department]?.count ?? 0) < 3, random.unit() < 0.2 {
                let role = roles[departmentName]![random.int(0...(roles[departmentName]!.count - 1))]
                title = "Lead \(role)"
                level = 1.6
                manager = heads[department]
                leads[department, default: []].append(id)
            } else {
                let role = roles[departmentName]![random.int(0...(roles[departmentName]!.count - 1))]
                let seniority = random.int(0...9)
                title = seniority < 3 ? "Junior \(role)" : (seniority < 7 ? role : "Senior \(role)")
                level = seniority < 3 ? 0.75 : (seniority < 7 ? 1.0 : 1.3)
                manager = leads[department]?.isEmpty == false && random.unit() < 0.7
                    ? leads[department]![random.int(0...(leads[department]!.count - 1))] : heads[department]
            }
            let hireYear = id <= departments.count ? 2012 + random.int(0...3) : 2012 + random.int(0...13)
            let hireDate = "\(hireYear)-\(pad(random.int(1...12)))-\(pad(random.int(1...28)))"
            let roll = random.unit()
            let status = roll < 0.92 ? "active" : (roll < 0.97 ? "on_leave" : "terminated")
            var salary = Int((baseSalary[departmentName]! * level * locations[location].factor * (0.9 + random.unit() * 0.2)) / 100) * 100

            // One increment a year from the year after hiring, 2021 on; most between 2 and 10 percent.
            for year in stride(from: max(firstYear, hireYear + 1), through: lastYear, by: 1)
            where !(status == "terminated" && year == lastYear) {
                // In tenths of a percent, so every value is exact to one decimal.
                let bucket = random.unit()
                let tenths: Int
                if bucket < 0.15 { tenths = random.int(0...19) }
                else if bucket < 0.45 { tenths = 20 + random.int(0...29) }
                else if bucket < 0.85 { tenths = 50 + random.int(0...50) }
                else { tenths = 101 + random.int(0...49) }
                let percentage = Double(tenths) / 10
                let newSalary = Int((Double(salary) * (1 + percentage / 100)).rounded())
                increments.append([.int(Int64(incrementId)), .int(Int64(id)), .int(Int64(year)),
                                   .text("\(year)-\(pad(random.int(1...4)))-01"), .double(percentage),
                                   .int(Int64(salary)), .int(Int64(newSalary))])
                incrementId += 1
                salary = newSalary
            }
            employees.append([.int(Int64(id)), .text(first), .text(last), .text(email), .text(title),
                              .int(Int64(department + 1)), .int(Int64(location + 1)), manager.map { .int(Int64($0)) } ?? .null,
                              .text(hireDate), .text(status), .int(Int64(salary))])
        }
        for chunk in stride(from: 0, to: employees.count, by: 50) {
            statements.append(batch("""
                INSERT INTO employees (id, first_name, last_name, email, title, department_id, location_id, manager_id,
                hire_date, status, salary) VALUES
                """, columns: 11, rows: Array(employees[chunk..<min(chunk + 50, employees.count)])))
        }
        for chunk in stride(from: 0, to: increments.count, by: 100) {
            statements.append(batch("""
                INSERT INTO salary_increments (id, employee_id, year, effective_date, percentage, previous_salary, new_salary) VALUES
                """, columns: 7, rows: Array(increments[chunk..<min(chunk + 100, increments.count)])))
        }
        return statements
    }

    private static func weightedDepartment(_ random: inout Generator) -> Int {
        // Engineering and Sales are the big ones, Legal the smallest.
        let weights = [30, 18, 10, 8, 6, 10, 14, 4]
        var roll = random.int(0...(weights.reduce(0, +) - 1))
        for (index, weight) in weights.enumerated() {
            if roll < weight { return index }
            roll -= weight
        }
        return 0
    }

    private static func batch(_ head: String, columns: Int, rows: [[SQLValue]]) -> (String, [SQLValue]) {
        let placeholders = "(" + Array(repeating: "?", count: columns).joined(separator: ", ") + ")"
        return (head + " " + Array(repeating: placeholders, count: rows.count).joined(separator: ", "), rows.flatMap { $0 })
    }

    private static func pad(_ number: Int) -> String { number < 10 ? "0\(number)" : "\(number)" }

    private static func ascii(_ name: String) -> String {
        String(name.applyingTransformLatinASCII)
    }
}

private extension String {
    /// Letters without accents, for e-mail addresses ("Chloé" → "Chloe").
    var applyingTransformLatinASCII: String {
        let plain: [Character: Character] = ["é": "e", "í": "i", "ó": "o", "á": "a", "ü": "u", "ç": "c", "ã": "a"]
        return String(self.map { plain[$0] ?? $0 })
    }
}
