import Storage

/// The HR schema and its migrations, in SQL that SQLite and PostgreSQL both accept.
public enum HRSchema {
    /// The HR tables as the database opens: migrated, and seeded when empty.
    public static let databaseSchema = DatabaseSchema(name: "hr") { database in
        try await prepare(database) ? "seeded" : nil
    }

    /// Migrations in order; each runs once, recorded in `schema_migrations`.
    static let migrations: [(version: Int, statements: [String])] = [
        (1, [
            """
            CREATE TABLE departments (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL UNIQUE
            )
            """,
            """
            CREATE TABLE locations (
                id INTEGER PRIMARY KEY,
                city TEXT NOT NULL,
                country TEXT NOT NULL
            )
            """,
            """
            CREATE TABLE employees (
                id INTEGER PRIMARY KEY,
                first_name TEXT NOT NULL,
                last_name TEXT NOT NULL,
                email TEXT NOT NULL UNIQUE,
                title TEXT NOT NULL,
                department_id INTEGER NOT NULL REFERENCES departments(id),
                location_id INTEGER NOT NULL REFERENCES locations(id),
                manager_id INTEGER REFERENCES employees(id),
                hire_date TEXT NOT NULL,
                status TEXT NOT NULL,
                salary INTEGER NOT NULL
            )
            """,
            """
            CREATE TABLE salary_increments (
                id INTEGER PRIMARY KEY,
                employee_id INTEGER NOT NULL REFERENCES employees(id),
                year INTEGER NOT NULL,
                effective_date TEXT NOT NULL,
                percentage DOUBLE PRECISION NOT NULL,
                previous_salary INTEGER NOT NULL,
                new_salary INTEGER NOT NULL
            )
            """,
            "CREATE INDEX employees_department ON employees(department_id)",
            "CREATE INDEX employees_location ON employees(location_id)",
            "CREATE INDEX increments_employee_year ON salary_increments(employee_id, year)",
            "CREATE INDEX increments_year ON salary_increments(year)",
        ]),
        // 2 was the stream records' table, now prepared by Storage (`StreamRecords.databaseSchema`).
    ]

    /// Applies pending migrations and seeds an empty database; safe to call on every start.
    /// Returns whether it seeded.
    @discardableResult
    public static func prepare(_ database: any SQLDatabase) async throws -> Bool {
        try await database.transaction([("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)", [])])
        let applied = Set(try await database.fetch("SELECT version FROM schema_migrations", []).compactMap { $0["version"]?.int })
        for migration in migrations where !applied.contains(migration.version) {
            try await database.transaction(migration.statements.map { ($0, []) }
                                           + [("INSERT INTO schema_migrations (version) VALUES (?)", [.int(Int64(migration.version))])])
        }
        let count = try await database.fetch("SELECT COUNT(*) AS n FROM employees", []).first?["n"]?.int ?? 0
        guard count == 0 else { return false }
        try await database.transaction(HRSeed.statements())
        return true
    }
}
