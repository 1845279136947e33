/// The `stream_feedback` table, beside the stream records it speaks of (prepared with them); a stream's newest
/// feedback counts.
enum FeedbackTable {
    static let statements = [
        """
        CREATE TABLE IF NOT EXISTS stream_feedback (
            session_id TEXT PRIMARY KEY,
            rating TEXT NOT NULL,
            expected_level TEXT,
            comment TEXT,
            given_at BIGINT NOT NULL
        )
        """,
    ]
}
