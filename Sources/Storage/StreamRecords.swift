/// One finished chat stream, as calibration keeps it.
public struct StreamRecord: Sendable, Hashable {
    public var sessionId: String
    /// Unix time in milliseconds.
    public var finishedAt: Int64
    /// The level and route of smart routing; `nil` for `POST /mcp/chat/stream`.
    public var level: String?
    public var route: String?
    public var provider: String
    public var model: String
    public var durationMs: Int
    /// `nil`: no text was sent.
    public var firstTextMs: Int?
    public var iterations: Int
    public var toolCalls: Int
    public var inputTokens: Int
    public var outputTokens: Int
    public var cacheReadTokens: Int
    public var cacheWriteTokens: Int
    public var costUSD: Double?
    /// `complete`, `error` or `client_gone`.
    public var outcome: String
    public var errorCode: String?

    public init(sessionId: String, finishedAt: Int64, level: String?, route: String?, provider: String, model: String,
                durationMs: Int, firstTextMs: Int?, iterations: Int, toolCalls: Int, inputTokens: Int, outputTokens: Int,
                cacheReadTokens: Int, cacheWriteTokens: Int, costUSD: Double?, outcome: String, errorCode: String?) {
        self.sessionId = sessionId
        self.finishedAt = finishedAt
        self.level = level
        self.route = route
        self.provider = provider
        self.model = model
        self.durationMs = durationMs
        self.firstTextMs = firstTextMs
        self.iterations = iterations
        self.toolCalls = toolCalls
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cacheReadTokens = cacheReadTokens
        self.cacheWriteTokens = cacheWriteTokens
        self.costUSD = costUSD
        self.outcome = outcome
        self.errorCode = errorCode
    }
}

/// Finished streams in the server's database (the HR database: SQLite by default, PostgreSQL when configured),
/// kept to the most recent `limit`.
public struct StreamRecords: Sendable {
    public let database: any SQLDatabase
    /// The most rows kept; older ones are deleted as new ones arrive.
    public let limit: Int

    public init(database: any SQLDatabase, limit: Int = 50_000) {
        self.database = database
        self.limit = limit
    }

    /// The table, prepared as the database opens (it is the HR schema's former migration 2, so databases that
    /// ran it already have it).
    public static let databaseSchema = DatabaseSchema(name: "stream records") { database in
        try await database.transaction(statements.map { ($0, []) })
        return nil
    }

    static let statements = [
        """
        CREATE TABLE IF NOT EXISTS stream_records (
            session_id TEXT PRIMARY KEY,
            finished_at BIGINT NOT NULL,
            level TEXT,
            route TEXT,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            duration_ms INTEGER NOT NULL,
            first_text_ms INTEGER,
            iterations INTEGER NOT NULL,
            tool_calls INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cache_read_tokens INTEGER NOT NULL,
            cache_write_tokens INTEGER NOT NULL,
            cost_usd DOUBLE PRECISION,
            outcome TEXT NOT NULL,
            error_code TEXT
        )
        """,
        "CREATE INDEX IF NOT EXISTS stream_records_finished ON stream_records(finished_at)",
    ]

    /// Stores `records` in one transaction, then deletes what is beyond the limit.
    public func insert(_ records: [StreamRecord]) async throws {
        guard !records.isEmpty else { return }
        let insert = """
            INSERT INTO stream_records (session_id, finished_at, level, route, provider, model, duration_ms, first_text_ms, iterations,
                tool_calls, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, outcome, error_code)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """
        func text(_ value: String?) -> SQLValue { value.map { .text($0) } ?? .null }
        func int(_ value: Int?) -> SQLValue { value.map { .int(Int64($0)) } ?? .null }
        var statements = records.map { record -> (sql: String, arguments: [SQLValue]) in
            (insert, [.text(record.sessionId), .int(record.finishedAt), text(record.level), text(record.route), .text(record.provider),
                      .text(record.model), int(record.durationMs), int(record.firstTextMs), int(record.iterations),
                      int(record.toolCalls), int(record.inputTokens), int(record.outputTokens), int(record.cacheReadTokens),
                      int(record.cacheWriteTokens), record.costUSD.map { .double($0) } ?? .null, .text(record.outcome),
                      text(record.errorCode)])
        }
        // Past the limit, the oldest go (a subquery with no row deletes nothing).
        statements.append(("""
            DELETE FROM stream_records WHERE finished_at < (
                SELECT finished_at FROM stream_records ORDER BY finished_at DESC LIMIT 1 OFFSET ?)
            """, [.int(Int64(limit - 1))]))
        try await database.transaction(statements)
    }

    /// The most recent `window` streams that finished well on a level: what calibration compares with the rules.
    public func samples(window: Int) async throws -> [(level: String, route: String, durationMs: Int, firstTextMs: Int?)] {
        let rows = try await database.fetch("""
            SELECT level, route, duration_ms, first_text_ms FROM stream_records
            WHERE outcome = 'complete' AND level IS NOT NULL AND route IS NOT NULL
            ORDER BY finished_at DESC LIMIT ?
            """, [.int(Int64(window))])
        return rows.compactMap { row in
            guard let level = row["level"]?.text, let route = row["route"]?.text, let duration = row["duration_ms"]?.int else { return nil }
            return (level, route, duration, row["first_text_ms"]?.int)
        }
    }

    /// How many streams are kept.
    public func count() async throws -> Int {
        try await database.fetch("SELECT COUNT(*) AS n FROM stream_records", []).first?["n"]?.int ?? 0
    }
}
