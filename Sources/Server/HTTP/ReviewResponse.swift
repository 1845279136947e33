import ChatCore
import Foundation
import Routing

/// `GET /rules/review`'s answer: the chats of the window that look misrouted by how they went or by their clients'
/// feedback, newest first.
struct ReviewResponse: Encodable {
    struct Entry: Encodable {
        let sessionId: String
        /// ISO 8601, UTC.
        let finishedAt: String
        let level: String
        @ExplicitNull var route: String?
        let signals: [MisrouteSignal]
        let suggestedLevel: String
        /// Whether `suggestedLevel` is a guess from the outcome rather than the client's word.
        let guessed: Bool
        let iterations: Int
        let toolCalls: Int
        let durationMs: Int
        @ExplicitNull var costUSD: Double?
        let matchedRules: [String]
        /// The chat's last user text, when the server records it (`--record-queries`).
        @ExplicitNull var text: String?
        @ExplicitNull var feedback: Feedback?
    }

    struct Feedback: Encodable {
        let rating: String
        @ExplicitNull var expectedLevel: String?
        @ExplicitNull var comment: String?
    }

    let rulesVersion: String
    /// The chats looked at (those that finished in the window, up to `limit`).
    let looked: Int
    let flagged: [Entry]

    init(_ flagged: [FlaggedChat], looked: Int, rulesVersion: String) {
        self.rulesVersion = rulesVersion
        self.looked = looked
        self.flagged = flagged.map { chat in
            let stream = chat.stream
            return Entry(sessionId: stream.sessionId, finishedAt: Timestamp.iso8601(Date(timeIntervalSince1970: Double(stream.finishedAt) / 1000)),
                         level: chat.level, route: stream.route, signals: chat.signals, suggestedLevel: chat.suggestedLevel,
                         guessed: chat.guessed, iterations: stream.iterations, toolCalls: stream.toolCalls, durationMs: stream.durationMs,
                         costUSD: stream.costUSD, matchedRules: stream.matchedRules, text: stream.queryText,
                         feedback: stream.feedback.map { Feedback(rating: $0.rating.rawValue, expectedLevel: $0.expectedLevel, comment: $0.comment) })
        }
    }
}
