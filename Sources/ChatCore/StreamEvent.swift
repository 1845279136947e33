/// What a chat stream tells the frontend, in order. Each becomes one SSE message (see Docs/STREAMING.md).
public enum StreamEvent: Sendable, Hashable {
    /// `traceId`: the W3C trace id of the chat's trace when the server traces (a bug report can name it).
    case sessionStart(sessionId: String, traceId: String? = nil)
    /// What smart routing decided (`POST /mcp/chat`), right after `session_start`.
    case routing(RoutingDecision)
    case iterationStart(iteration: Int)
    /// A piece of the model's text; the encoder adds `accumulated`, everything so far in this session.
    case textChunk(String)
    /// A piece of the model's extended thinking (a chat that asked for it), before its text.
    case thinkingChunk(String)
    case toolDetected(tool: String, toolUseId: String)
    case toolsExecuting(tools: [String])
    case toolProgress(ToolProgress)
    case complete(Completion)
    case error(StreamError)

    /// The events' names, as the SSE `type` field spells them (and as a client reads them back).
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case sessionStart = "session_start"
        case routing
        case iterationStart = "iteration_start"
        case thinkingChunk = "thinking_chunk"
        case textChunk = "text_chunk"
        case toolDetected = "tool_detected"
        case toolsExecuting = "tools_executing"
        case toolProgress = "tool_progress"
        case complete
        case error
    }

    public var kind: Kind {
        switch self {
        case .sessionStart: .sessionStart
        case .routing: .routing
        case .iterationStart: .iterationStart
        case .textChunk: .textChunk
        case .thinkingChunk: .thinkingChunk
        case .toolDetected: .toolDetected
        case .toolsExecuting: .toolsExecuting
        case .toolProgress: .toolProgress
        case .complete: .complete
        case .error: .error
        }
    }

    /// The SSE `type` field.
    public var type: String { kind.rawValue }
}

/// What a route does with a chat: stream it on its model, or answer with advice.
public enum RouteAction: String, Sendable, Hashable, CaseIterable, Codable {
    /// Proxy the chat into the streaming pipeline.
    case stream
    /// Answer with advice (for example "use the desktop client") instead of streaming.
    case advise
}

/// Smart routing's decision, as the `routing` event tells it.
public struct RoutingDecision: Sendable, Hashable {
    public var complexity: String
    public var score: Double
    public var route: String
    public var action: RouteAction {
        get { RouteAction(rawValue: actionWord) ?? .stream }
        set { actionWord = newValue.rawValue }
    }
    /// `action`, stored as its wire word. (With the enum stored here, Swift 6.3.1 miscompiles the Anthropic
    /// accumulator's `throws(StreamError) -> ModelStreamEvent?`: its `nil` came back as `.text("")`. The
    /// recorded-stream tests in `TurnAccumulatorTests` catch it.)
    private var actionWord: String
    /// The provider and model a stream runs on; `nil` for advice.
    public var provider: String?
    public var model: String?
    /// The advice, for an `advise` route.
    public var message: String?
    /// The ids of the rules that matched, in file order.
    public var matchedRules: [String]
    public var rulesVersion: String
    /// After a fallback: the `provider/model` that failed before its first byte, and why.
    public var fallbackFrom: String?
    public var reason: String?
    /// The semantic stage's part, when it served: who decided, the rules' level, the probabilities, the nearest examples.
    public var semantic: SemanticPart?

    public struct SemanticPart: Sendable, Hashable {
        public var decidedBy: String
        public var rulesLevel: String
        /// By level, in the rules' level order.
        public var probabilities: [Probability]
        public var nearest: [Neighbour]

        public struct Probability: Sendable, Hashable {
            public var level: String
            public var probability: Double
            public init(level: String, probability: Double) {
                self.level = level
                self.probability = probability
            }
        }

        public struct Neighbour: Sendable, Hashable {
            public var text: String
            public var level: String
            public var similarity: Double
            public init(text: String, level: String, similarity: Double) {
                self.text = text
                self.level = level
                self.similarity = similarity
            }
        }

        public init(decidedBy: String, rulesLevel: String, probabilities: [Probability], nearest: [Neighbour]) {
            self.decidedBy = decidedBy
            self.rulesLevel = rulesLevel
            self.probabilities = probabilities
            self.nearest = nearest
        }
    }

    public init(complexity: String, score: Double, route: String, action: RouteAction, provider: String?, model: String?,
                message: String?, matchedRules: [String], rulesVersion: String) {
        self.complexity = complexity
        self.score = score
        self.route = route
        actionWord = action.rawValue
        self.provider = provider
        self.model = model
        self.message = message
        self.matchedRules = matchedRules
        self.rulesVersion = rulesVersion
    }
}

/// A tool's state within one model turn's batch of tool calls.
public struct ToolProgress: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        case executing
        case completed
        case failed
    }

    public var tool: String
    public var toolUseId: String
    public var status: Status
    /// Tools of this batch finished so far, counting this one when it just finished.
    public var current: Int
    /// Tools in this batch.
    public var total: Int
    /// How long the tool ran; `nil` while executing.
    public var executionTimeMs: Int?
    public var error: String?
    /// The result was cut to the size limit before it went to the model.
    public var truncated: Bool
    /// With `toolDetails`: the input the model sent (`executing`).
    public var input: JSONValue?
    /// With `toolDetails`: the text the model receives (`completed`), cut at `resultLimit`.
    public var result: String?
    /// `result` was cut.
    public var resultTruncated = false

    /// The most of a result a `tool_progress` event carries (UTF-8 bytes, cut on a character boundary): enough
    /// for a frontend to show; the model still gets the whole result (up to the tool's own cap).
    public static let resultLimit = 8 << 10

    public init(tool: String, toolUseId: String, status: Status, current: Int, total: Int,
                executionTimeMs: Int? = nil, error: String? = nil, truncated: Bool = false) {
        self.tool = tool
        self.toolUseId = toolUseId
        self.status = status
        self.current = current
        self.total = total
        self.executionTimeMs = executionTimeMs
        self.error = error
        self.truncated = truncated
    }
}

/// How a session ended well.
public struct Completion: Sendable, Hashable {
    public var iterations: Int
    /// The model's last stop reason (`end_turn`, `max_tokens`, …) or `max_iterations`.
    public var stopReason: StopReason
    public var totalTimeMs: Int
    public var usage: Usage
    /// The calls of the client's own tools (a chat that brought them) the model made in its last turn, for the
    /// client to run; empty otherwise (Switchboard ran its tools itself).
    public var toolCalls: [ToolUse]
    /// With `returnMessages`: the turns this chat added, in the request's format.
    public var messages: [ChatMessage]?

    public init(iterations: Int, stopReason: StopReason, totalTimeMs: Int, usage: Usage, toolCalls: [ToolUse] = []) {
        self.iterations = iterations
        self.stopReason = stopReason
        self.totalTimeMs = totalTimeMs
        self.usage = usage
        self.toolCalls = toolCalls
    }
}

/// Tokens used, summed over every model call of the session, in the same shape whichever provider answered.
///
/// `inputTokens` never includes cached tokens: Anthropic counts them apart, and an OpenAI-compatible server's
/// `prompt_tokens` has its `cached_tokens` taken out (they are `cacheReadTokens`).
public struct Usage: Sendable, Hashable {
    public var inputTokens: Int
    public var outputTokens: Int
    /// Input read from the provider's prompt cache.
    public var cacheReadTokens: Int
    /// Input written to the provider's prompt cache (Anthropic's `cache_creation_input_tokens`).
    public var cacheWriteTokens: Int
    /// What the calls cost in US dollars, from the prices in the rules file's providers: the sum over the calls
    /// whose model has a price; `nil` when none had.
    public var costUSD: Double?

    public init(inputTokens: Int = 0, outputTokens: Int = 0, cacheReadTokens: Int = 0, cacheWriteTokens: Int = 0,
                costUSD: Double? = nil) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cacheReadTokens = cacheReadTokens
        self.cacheWriteTokens = cacheWriteTokens
        self.costUSD = costUSD
    }

    /// The most tokens one model call may report in one field: far above any model's context or output (2 M and
    /// 128 K today), far below what could overflow a day's or a month's totals. A provider's count is clamped to
    /// `0...maxTokensPerCall` where it is read (`tokenCount`), so no counter, budget or cost sees a bad value.
    public static let maxTokensPerCall = 10_000_000

    /// A provider's token count as Switchboard takes it: a JSON number clamped to `0...maxTokensPerCall`, a
    /// fraction rounded down; `nil` (the field is absent) for anything that is not a number.
    public static func tokenCount(_ value: JSONValue?) -> Int? {
        guard case .number(let number)? = value, !number.isNaN else { return nil }
        return Int(min(max(number, 0), Double(maxTokensPerCall)).rounded(.down))
    }

    public static func + (lhs: Usage, rhs: Usage) -> Usage {
        let cost: Double? = switch (lhs.costUSD, rhs.costUSD) {
        case (nil, nil): nil
        case let (left, right): (left ?? 0) + (right ?? 0)
        }
        return Usage(inputTokens: lhs.inputTokens + rhs.inputTokens, outputTokens: lhs.outputTokens + rhs.outputTokens,
                     cacheReadTokens: lhs.cacheReadTokens + rhs.cacheReadTokens,
                     cacheWriteTokens: lhs.cacheWriteTokens + rhs.cacheWriteTokens, costUSD: cost)
    }
}

/// Why a session failed; the stream ends after it.
public struct StreamError: Error, Sendable, Hashable {
    /// Stable machine-readable code; see Docs/STREAMING.md.
    public var code: StreamErrorCode
    public var message: String
    /// Whether sending the same chat again may succeed.
    public var retryable: Bool

    /// What the model service said, in its own words: for the server's log (redacted), never for a client.
    public var upstreamMessage: String?

    public init(code: StreamErrorCode, message: String, retryable: Bool, upstreamMessage: String? = nil) {
        self.code = code
        self.message = message
        self.retryable = retryable
        self.upstreamMessage = upstreamMessage
    }
}
