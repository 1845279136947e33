import ChatCore

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
    /// The key that opened it (`nil` without keys): the one that may give feedback on it.
    public var owner: String?
    /// What the rules made of the chat, on every endpoint (`level` is set only where the level routed it).
    public var analysis: RecordedAnalysis?
    /// The last stop reason (`end_turn`, `max_iterations`, …) of a stream that completed.
    public var stopReason: String?
    /// The chat's last user text, bounded, with `--record-queries` only.
    public var queryText: String?

    public init(sessionId: String, finishedAt: Int64, level: String?, route: String?, provider: String, model: String,
                durationMs: Int, firstTextMs: Int?, iterations: Int, toolCalls: Int, inputTokens: Int, outputTokens: Int,
                cacheReadTokens: Int, cacheWriteTokens: Int, costUSD: Double?, outcome: String, errorCode: String?,
                owner: String? = nil, analysis: RecordedAnalysis? = nil, stopReason: String? = nil, queryText: String? = nil) {
        self.owner = owner
        self.analysis = analysis
        self.stopReason = stopReason
        self.queryText = queryText
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

/// The rules' verdict on a chat, as a record keeps it.
public struct RecordedAnalysis: Sendable, Hashable {
    public var level: String
    public var score: Double
    /// The ids of the rules that matched, in file order.
    public var matchedRules: [String]

    public init(level: String, score: Double, matchedRules: [String]) {
        self.level = level
        self.score = score
        self.matchedRules = matchedRules
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
        // Columns added after the table's first release, added to a table that lacks them. The column list is read
        // without a failing statement (a failed statement would abort a PostgreSQL preparation): PostgreSQL's
        // information schema, else SQLite's table_info.
        let existing: [SQLRow]
        do {
            existing = try await database.fetch("""
                SELECT column_name AS name FROM information_schema.columns
                WHERE table_name = 'stream_records' AND table_schema = current_schema()
                """, [])
        } catch {
            existing = try await database.fetch("SELECT name FROM pragma_table_info('stream_records')", [])
        }
        let names = Set(existing.compactMap { $0["name"]?.text })
        let missing = addedColumns.filter { !names.contains($0.name) }
        if !missing.isEmpty {
            try await database.transaction(missing.map { ("ALTER TABLE stream_records ADD COLUMN \($0.name) \($0.type)", []) })
        }
        try await database.transaction(FeedbackTable.statements.map { ($0, []) })
        return nil
    }

    /// The columns of the analysis, the owner, the stop reason and the recorded text (issue #22).
    static let addedColumns: [(name: String, type: String)] = [
        ("owner", "TEXT"), ("analysed_level", "TEXT"), ("score", "DOUBLE PRECISION"), ("matched_rules", "TEXT"), ("stop_reason", "TEXT"),
        ("query_text", "TEXT"),
    ]

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
            error_code TEXT,
            owner TEXT,
            analysed_level TEXT,
            score DOUBLE PRECISION,
            matched_rules TEXT,
            stop_reason TEXT,
            query_text TEXT
        )
        """,
        "CREATE INDEX IF NOT EXISTS stream_records_finished ON stream_records(finished_at)",
    ]

    /// Stores `records` in one transaction, then deletes what is beyond the limit.
    public func insert(_ records: [StreamRecord]) async throws {
        guard !records.isEmpty else { return }
        let insert = """
            INSERT INTO stream_records (session_id, finished_at, level, route, provider, model, duration_ms, first_text_ms, iterations,
                tool_calls, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, outcome, error_code,
                owner, analysed_level, score, matched_rules, stop_reason, query_text)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """
        func text(_ value: String?) -> SQLValue { value.map { .text($0) } ?? .null }
        func int(_ value: Int?) -> SQLValue { value.map { .int(Int64($0)) } ?? .null }
        var statements = records.map { record -> (sql: String, arguments: [SQLValue]) in
            (insert, [.text(record.sessionId), .int(record.finishedAt), text(record.level), text(record.route), .text(record.provider),
                      .text(record.model), int(record.durationMs), int(record.firstTextMs), int(record.iterations),
                      int(record.toolCalls), int(record.inputTokens), int(record.outputTokens), int(record.cacheReadTokens),
                      int(record.cacheWriteTokens), record.costUSD.map { .double($0) } ?? .null, .text(record.outcome),
                      text(record.errorCode), text(record.owner), text(record.analysis?.level),
                      record.analysis.map { .double($0.score) } ?? .null,
                      text(record.analysis.map { $0.matchedRules.joined(separator: ",") }), text(record.stopReason), text(record.queryText)])
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

    /// Whether the stream `sessionId` is kept, and the key that opened it.
    public func owner(of sessionId: String) async throws -> (kept: Bool, owner: String?) {
        guard let row = try await database.fetch("SELECT owner FROM stream_records WHERE session_id = ?", [.text(sessionId)]).first else {
            return (false, nil)
        }
        return (true, row["owner"]?.text)
    }

    /// The streams that finished at or after `since` (Unix ms), newest first, at most `limit`, with their feedback.
    public func reviewed(since: Int64, limit: Int) async throws -> [ReviewedStream] {
        let rows = try await database.fetch("""
            SELECT r.session_id, r.finished_at, r.level, r.route, r.analysed_level, r.score, r.matched_rules, r.duration_ms,
                   r.iterations, r.tool_calls, r.output_tokens, r.cost_usd, r.outcome, r.stop_reason, r.query_text,
                   f.rating, f.expected_level, f.comment
            FROM stream_records r LEFT JOIN stream_feedback f ON f.session_id = r.session_id
            WHERE r.finished_at >= ? ORDER BY r.finished_at DESC LIMIT ?
            """, [.int(since), .int(Int64(limit))])
        return rows.compactMap { row in
            guard let id = row["session_id"]?.text, let finished = row["finished_at"]?.int else { return nil }
            let rules = row["matched_rules"]?.text.map { $0.split(separator: ",").map(String.init) } ?? []
            return ReviewedStream(
                sessionId: id, finishedAt: Int64(finished), level: row["level"]?.text, route: row["route"]?.text,
                analysedLevel: row["analysed_level"]?.text, score: row["score"]?.double, matchedRules: rules,
                durationMs: row["duration_ms"]?.int ?? 0, iterations: row["iterations"]?.int ?? 0, toolCalls: row["tool_calls"]?.int ?? 0,
                outputTokens: row["output_tokens"]?.int ?? 0, costUSD: row["cost_usd"]?.double, outcome: row["outcome"]?.text ?? "",
                stopReason: row["stop_reason"]?.text, queryText: row["query_text"]?.text,
                feedback: row["rating"]?.text.flatMap(StreamFeedback.Rating.init(rawValue:)).map { StreamFeedback(rating: $0, expectedLevel: row["expected_level"]?.text,
                                                                  comment: row["comment"]?.text) })
        }
    }

    /// Keeps a client's feedback on a stream (the last one given counts).
    public func saveFeedback(_ feedback: StreamFeedback, sessionId: String, at time: Int64) async throws {
        try await database.transaction([("""
            INSERT INTO stream_feedback (session_id, rating, expected_level, comment, given_at) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (session_id) DO UPDATE SET rating = excluded.rating, expected_level = excluded.expected_level,
                comment = excluded.comment, given_at = excluded.given_at
            """, [.text(sessionId), .text(feedback.rating.rawValue), feedback.expectedLevel.map { .text($0) } ?? .null,
                  feedback.comment.map { .text($0) } ?? .null, .int(time)])])
    }

    /// How many streams are kept.
    public func count() async throws -> Int {
        try await database.fetch("SELECT COUNT(*) AS n FROM stream_records", []).first?["n"]?.int ?? 0
    }
}
