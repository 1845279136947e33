/// One call to a model: the conversation so far and the tools it may use.
public struct ModelRequest: Sendable, Hashable {
    public var model: String
    public var system: String?
    public var maxTokens: Int
    public var messages: [ChatMessage]
    public var tools: [ToolDefinition]

    public init(model: String, system: String?, maxTokens: Int, messages: [ChatMessage], tools: [ToolDefinition]) {
        self.model = model
        self.system = system
        self.maxTokens = maxTokens
        self.messages = messages
        self.tools = tools
    }
}

/// Something the model did while its turn streams.
public enum ModelStreamEvent: Sendable, Hashable {
    case text(String)
    /// The model began a tool call; its input is still arriving.
    case toolUseStarted(id: String, name: String)
    /// The call moved to another provider or model before its first byte (a fallback): the new decision.
    case routing(RoutingDecision)
}

/// A tool call whose input arrived whole and parsed.
public struct ToolUse: Sendable, Hashable {
    public var id: String
    public var name: String
    public var input: JSONValue

    public init(id: String, name: String, input: JSONValue) {
        self.id = id
        self.name = name
        self.input = input
    }
}

/// A finished model turn.
public struct ModelTurn: Sendable, Hashable {
    /// The assistant's content blocks, to send back unchanged in the next request (thinking included).
    public var content: [JSONValue]
    /// Tool calls that completed; a call cut off (for example by `max_tokens`) is never here.
    public var toolUses: [ToolUse]
    public var stopReason: StopReason
    public var usage: Usage

    public init(content: [JSONValue], toolUses: [ToolUse], stopReason: StopReason, usage: Usage) {
        self.content = content
        self.toolUses = toolUses
        self.stopReason = stopReason
        self.usage = usage
    }
}

/// Delivers one event of a model call at once, on the thread that read it, without suspending: `true` when it
/// did; `false` when it cannot now (it is not on its consumer's thread, or its consumer must wait), and the event
/// then goes through the call's `onEvent` instead. A thrown error ends the call with that error.
public typealias DeliverNow = @Sendable (ModelStreamEvent) throws -> Bool

/// A streaming chat model, such as the Anthropic Messages API.
public protocol LanguageModel: Sendable {
    /// Runs one turn, calling `onEvent` as text and tool calls arrive, and returns the whole turn.
    /// Throws `StreamError` for failures the user should hear about; cancellation ends the request.
    func streamTurn(_ request: ModelRequest, onEvent: (ModelStreamEvent) async throws -> Void) async throws -> ModelTurn

    /// The same call, offering each event to `deliverNow` first where the model reads it (a relay then costs no
    /// task switch per event); events it does not take go to `onEvent`, in order. A model without such a path
    /// sends everything to `onEvent`.
    func streamTurn(_ request: ModelRequest, deliverNow: DeliverNow?, onEvent: (ModelStreamEvent) async throws -> Void) async throws
        -> ModelTurn
}

extension LanguageModel {
    public func streamTurn(_ request: ModelRequest, deliverNow: DeliverNow?, onEvent: (ModelStreamEvent) async throws -> Void)
        async throws -> ModelTurn {
        try await streamTurn(request, onEvent: onEvent)
    }
}

/// A model that implements the call with `deliverNow` (its clients, and the wrappers that pass it on); the call
/// without it is that call with none.
public protocol RelayingLanguageModel: LanguageModel {
    func streamTurn(_ request: ModelRequest, deliverNow: DeliverNow?, onEvent: (ModelStreamEvent) async throws -> Void) async throws
        -> ModelTurn
}

extension RelayingLanguageModel {
    public func streamTurn(_ request: ModelRequest, onEvent: (ModelStreamEvent) async throws -> Void) async throws -> ModelTurn {
        try await streamTurn(request, deliverNow: nil, onEvent: onEvent)
    }
}

/// Any language model, as one type: for a loop whose model is chosen at run time (a route's provider).
public struct AnyLanguageModel: RelayingLanguageModel {
    public let base: any LanguageModel

    public init(_ base: any LanguageModel) {
        self.base = base
    }

    public func streamTurn(_ request: ModelRequest, deliverNow: DeliverNow?, onEvent: (ModelStreamEvent) async throws -> Void)
        async throws -> ModelTurn {
        try await base.streamTurn(request, deliverNow: deliverNow, onEvent: onEvent)
    }
}
