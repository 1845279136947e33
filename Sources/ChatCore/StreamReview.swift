/// A client's verdict on one of its streams (`POST /mcp/chat/feedback`).
public struct StreamFeedback: Sendable, Hashable {
    public enum Rating: String, Sendable, Hashable, CaseIterable {
        case up
        case down
    }

    public var rating: Rating
    /// The level the client says the chat belonged to.
    public var expectedLevel: String?
    public var comment: String?

    public init(rating: Rating, expectedLevel: String?, comment: String?) {
        self.rating = rating
        self.expectedLevel = expectedLevel
        self.comment = comment
    }
}

/// A finished stream as a review reads it: where it went, what the rules made of it, how it went, what its client
/// said.
public struct ReviewedStream: Sendable, Hashable {
    public var sessionId: String
    public var finishedAt: Int64
    /// The level and route of smart routing; `nil` for a stream that was not routed.
    public var level: String?
    public var route: String?
    public var analysedLevel: String?
    public var score: Double?
    public var matchedRules: [String]
    public var durationMs: Int
    public var iterations: Int
    public var toolCalls: Int
    public var outputTokens: Int
    public var costUSD: Double?
    public var outcome: String
    public var stopReason: String?
    public var queryText: String?
    public var feedback: StreamFeedback?

    public init(sessionId: String, finishedAt: Int64, level: String?, route: String?, analysedLevel: String?, score: Double?,
                matchedRules: [String], durationMs: Int, iterations: Int, toolCalls: Int, outputTokens: Int, costUSD: Double?,
                outcome: String, stopReason: String?, queryText: String?, feedback: StreamFeedback?) {
        self.sessionId = sessionId
        self.finishedAt = finishedAt
        self.level = level
        self.route = route
        self.analysedLevel = analysedLevel
        self.score = score
        self.matchedRules = matchedRules
        self.durationMs = durationMs
        self.iterations = iterations
        self.toolCalls = toolCalls
        self.outputTokens = outputTokens
        self.costUSD = costUSD
        self.outcome = outcome
        self.stopReason = stopReason
        self.queryText = queryText
        self.feedback = feedback
    }
}
