/// Why a model turn (or the whole session) stopped: the model's `stop_reason`, or `max_iterations` when the
/// agent loop reached its limit. Reasons the model service adds later pass through as `other`.
public enum StopReason: Sendable, Hashable, RawRepresentable, ExpressibleByStringLiteral {
    case endTurn
    case maxTokens
    case stopSequence
    case toolUse
    /// A long server-side turn was paused; sending it back lets the model go on.
    case pauseTurn
    case refusal
    /// Switchboard's own: the loop reached its iteration limit while the model still wanted tools.
    case maxIterations
    /// Switchboard's own: smart routing advised instead of streaming (an advice sent as SSE); no model was called.
    case advise
    /// Switchboard's own: the key's budget was spent before the chat's next model call, so the chat ended there.
    case budget
    case other(String)

    public init(rawValue: String) {
        self = switch rawValue {
        case "end_turn": .endTurn
        case "max_tokens": .maxTokens
        case "stop_sequence": .stopSequence
        case "tool_use": .toolUse
        case "pause_turn": .pauseTurn
        case "refusal": .refusal
        case "max_iterations": .maxIterations
        case "advise": .advise
        case "budget": .budget
        default: .other(rawValue)
        }
    }

    public init(stringLiteral value: String) {
        self.init(rawValue: value)
    }

    public var rawValue: String {
        switch self {
        case .endTurn: "end_turn"
        case .maxTokens: "max_tokens"
        case .stopSequence: "stop_sequence"
        case .toolUse: "tool_use"
        case .pauseTurn: "pause_turn"
        case .refusal: "refusal"
        case .maxIterations: "max_iterations"
        case .advise: "advise"
        case .budget: "budget"
        case .other(let value): value
        }
    }
}

/// Thrown by a model before a call it may not make because the chat's key has spent its budget: the agent loop
/// ends the chat with `complete` and `StopReason.budget` instead of an error.
public struct BudgetSpent: Error, Sendable {
    public init() {}
}
