/// One call to a model: the conversation so far and the tools it may use.
public struct ModelRequest: Sendable, Hashable {
    public var model: String
    public var system: String?
    public var maxTokens: Int
    public var messages: [ChatMessage]
    public var tools: [ToolDefinition]
    /// The most attempts the call may make, its first included, set by a caller with somewhere else to go (a
    /// route's fallbacks) so a failing provider is left at once; `nil`: the client's retry policy decides.
    public var maxAttempts: Int?
    /// Extended thinking's budget in tokens (`nil`: no thinking); a provider that cannot think ignores it.
    public var thinkingBudget: Int?

    public init(model: String, system: String?, maxTokens: Int, messages: [ChatMessage], tools: [ToolDefinition],
                maxAttempts: Int? = nil) {
        self.model = model
        self.system = system
        self.maxTokens = maxTokens
        self.messages = messages
        self.tools = tools
        self.maxAttempts = maxAttempts
    }
}

/// Something the model did while its turn streams.
public enum ModelStreamEvent: Sendable, Hashable {
    case text(String)
    /// A piece of the model's extended thinking.
    case thinking(String)
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
    /// The model that answered, as the provider named it (it may differ from the one asked for: an alias resolved).
    public var responseModel: String?
    /// The provider's id of the response.
    public var responseId: String?
    /// From sending the request to the first text or tool call of the answer (the attempt that answered).
    public var firstChunkAfter: Duration?

    public init(content: [JSONValue], toolUses: [ToolUse], stopReason: StopReason, usage: Usage, responseModel: String? = nil,
                responseId: String? = nil, firstChunkAfter: Duration? = nil) {
        self.content = content
        self.toolUses = toolUses
        self.stopReason = stopReason
        self.usage = usage
        self.responseModel = responseModel
        self.responseId = responseId
        self.firstChunkAfter = firstChunkAfter
    }
}

/// A streaming chat model, such as the Anthropic Messages API.
public protocol LanguageModel: Sendable {
    /// Runs one turn, giving `sink` the text and tool calls as they arrive (`takeNow` where the model reads them,
    /// `take` for what that refused), and returns the whole turn. A model call honours `sink.deadlines` for what
    /// its own timers cannot stop. Throws `StreamError` for failures the user should hear about; cancellation
    /// ends the request.
    func streamTurn(_ request: ModelRequest, into sink: some EventSink<ModelStreamEvent>) async throws -> ModelTurn
}

extension LanguageModel {
    /// The same call for a caller that awaits each event on its own task.
    public func streamTurn(_ request: ModelRequest, onEvent: @escaping @Sendable (ModelStreamEvent) async throws -> Void)
        async throws -> ModelTurn {
        try await streamTurn(request, into: WaitingSink(onEvent))
    }
}

/// Any language model, as one type: for a loop whose model is chosen at run time (a route's provider).
public struct AnyLanguageModel: LanguageModel {
    public let base: any LanguageModel

    public init(_ base: any LanguageModel) {
        self.base = base
    }

    public func streamTurn(_ request: ModelRequest, into sink: some EventSink<ModelStreamEvent>) async throws -> ModelTurn {
        try await base.streamTurn(request, into: sink)
    }
}
