import Testing
import Tools

@Suite("Database location")
struct DatabaseLocationTests {
    @Test("a spec names SQLite, memory or PostgreSQL", arguments: [
        (":memory:", DatabaseLocation.memory),
        ("data/hr.sqlite", .sqlite(path: "data/hr.sqlite")),
        ("postgres://u:p@db:5432/hr", .postgres(url: "postgres://u:p@db:5432/hr")),
        ("postgresql://db/hr", .postgres(url: "postgresql://db/hr")),
    ])
    func parses(spec: String, location: DatabaseLocation) {
        #expect(DatabaseLocation(spec) == location)
    }

    @Test("its description never shows a password")
    func redacts() {
        #expect(DatabaseLocation("postgres://hr:s3cret@db:5432/hr?sslmode=require").description
                == "postgres://hr@db:5432/hr?sslmode=require")
        #expect(DatabaseLocation("data/hr.sqlite").description == "data/hr.sqlite")
    }
}
