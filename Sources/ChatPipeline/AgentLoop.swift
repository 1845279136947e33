import ChatCore
import Foundation
import OTelSemanticConventions
import Tracing

/// The agentic loop's limits and defaults.
public struct AgentConfiguration: Sendable {
    public var model: String
    public var maxTokens: Int
    public var maxIterations: Int
    public var toolTimeout: Duration
    /// Tool calls run from one model turn; the calls after these get an error result and do not run.
    public var maxToolCallsPerTurn: Int
    /// Whether tool spans carry the call's arguments and result (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`).
    public var captureContent = false

    public init(model: String = "claude-sonnet-4-5", maxTokens: Int = 4096, maxIterations: Int = 6,
                toolTimeout: Duration = .seconds(30), maxToolCallsPerTurn: Int = 16) {
        self.model = model
        self.maxTokens = maxTokens
        self.maxIterations = maxIterations
        self.toolTimeout = toolTimeout
        self.maxToolCallsPerTurn = maxToolCallsPerTurn
    }
}

/// The agentic loop: model turn, tools, next turn, until the model stops or the iterations run out.
///
/// It depends on protocols only and gives every event to its `EventSink` the moment it happens. Tools of one turn
/// run concurrently as child tasks; cancelling the caller cancels the model call and the tools.
public struct AgentLoop<Model: LanguageModel>: Sendable {
    public let model: Model
    public let tools: ToolBox
    public let configuration: AgentConfiguration

    public init(model: Model, tools: ToolBox, configuration: AgentConfiguration) {
        self.model = model
        self.tools = tools
        self.configuration = configuration
    }

    /// Runs a chat to its end, giving `sink` `session_start` first and `complete` or `error` last.
    /// Returns without the last event only when cancelled or when the sink throws (the client left).
    ///
    /// The model's text and tool-call events reach `sink.takeNow` where the model client reads them (see
    /// `EventSink`), and `sink.take` when that refused them; the rest go to `sink.take`. Either way the events
    /// keep their order.
    /// `traceId` goes in `session_start`.
    public func run(_ chat: ChatRequest, sessionId: String, traceId: String? = nil, into sink: some EventSink<StreamEvent>) async throws {
        let clock = ContinuousClock()
        let started = clock.now
        // Failures to deliver (the client left) are told apart from failures to produce.
        let relay = ModelEventRelay(base: sink)
        @Sendable func send(_ event: StreamEvent) async throws {
            try await relay.send(event)
        }
        try await sink.take(.sessionStart(sessionId: sessionId, traceId: traceId))
        var messages = chat.messages
        let sent = messages.count
        /// `complete` for a chat that ends after `turn`: with `returnMessages`, the turns this chat added, its last
        /// assistant turn included when it has not joined the conversation yet.
        func completion(_ stopReason: StopReason, last turn: ModelTurn?, toolCalls: [ToolUse] = []) -> StreamEvent {
            var completion = Completion(iterations: iteration, stopReason: stopReason, totalTimeMs: (clock.now - started).inMilliseconds,
                                        usage: usage, toolCalls: toolCalls)
            if chat.returnMessages {
                var added = Array(messages[sent...])
                if let turn { added.append(ChatMessage(role: .assistant, content: .blocks(turn.content))) }
                completion.messages = added.compactMap(Self.returnable)
            }
            return .complete(completion)
        }
        var usage = Usage()
        var iteration = 0
        do {
            while true {
                iteration += 1
                try await send(.iterationStart(iteration: iteration))
                var request = ModelRequest(model: chat.model ?? configuration.model, system: chat.system,
                                           maxTokens: chat.maxTokens ?? configuration.maxTokens,
                                           messages: messages, tools: chat.clientTools ?? tools.definitions)
                request.thinkingBudget = chat.thinkingBudget
                let turn: ModelTurn
                do {
                    turn = try await model.streamTurn(request, into: relay)
                } catch is BudgetSpent {
                    // The key's budget ran out between iterations: the chat ends cleanly, saying why.
                    try await send(completion(.budget, last: nil))
                    return
                }
                usage = usage + turn.usage

                let continues: Bool
                switch turn.stopReason {
                case .toolUse where !turn.toolUses.isEmpty && chat.clientTools != nil:
                    // The client's tools: their calls go back to the client, which runs them and sends the results.
                    try await send(completion(.toolUse, last: turn, toolCalls: turn.toolUses))
                    return
                case .toolUse where !turn.toolUses.isEmpty:
                    let results = try await runTools(turn.toolUses, details: chat.toolDetails, emit: send)
                    messages.append(ChatMessage(role: .assistant, content: .blocks(turn.content)))
                    messages.append(ChatMessage(role: .user, content: .blocks(results)))
                    continues = true
                case .pauseTurn:
                    // A long server-side turn was paused: sending it back as it is lets the model go on.
                    messages.append(ChatMessage(role: .assistant, content: .blocks(turn.content)))
                    continues = true
                default:
                    continues = false
                }
                if !continues {
                    try await send(completion(turn.stopReason, last: turn))
                    return
                }
                if iteration >= configuration.maxIterations {
                    try await send(completion(.maxIterations, last: nil))
                    return
                }
            }
        } catch let error as StreamError {
            try Task.checkCancellation()
            try await sink.take(.error(error))
        } catch let error as EmitFailure {
            throw error.underlying
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            try Task.checkCancellation()
            try await sink.take(.error(StreamError(code: .internalError, message: "Switchboard failed: \(type(of: error)).",
                                              retryable: true)))
        }
    }

    /// Runs one turn's tool calls concurrently, reporting each start and finish, and returns the
    /// `tool_result` blocks in the order of the calls.
    /// With `details`, the events carry each call's input and its result.
    private func runTools(_ uses: [ToolUse], details: Bool, emit: (StreamEvent) async throws -> Void) async throws -> [JSONValue] {
        try await emit(.toolsExecuting(tools: uses.map(\.name)))
        for use in uses {
            var progress = ToolProgress(tool: use.name, toolUseId: use.id, status: .executing, current: 0, total: uses.count)
            if details { progress.input = use.input }
            try await emit(.toolProgress(progress))
        }
        var outputs = [ToolOutput?](repeating: nil, count: uses.count)
        let tools = self.tools
        let timeout = configuration.toolTimeout
        let limit = configuration.maxToolCallsPerTurn
        let capture = configuration.captureContent
        try await withThrowingTaskGroup(of: (Int, ToolOutput, Duration).self) { group in
            for (index, use) in uses.enumerated() {
                // Tools run on Swift's pool: the stream's own task may prefer its connection's event loop.
                group.addTask(executorPreference: globalConcurrentExecutor) {
                    let clock = ContinuousClock()
                    let started = clock.now
                    // Past the cap a call does not run: the model hears why and can ask again in its next turn.
                    let output = index < limit ? await Self.traced(use, captureContent: capture) {
                        await Self.execute(use, tools: tools, timeout: timeout)
                    } : ToolOutput(content: "Not run: at most \(limit) tool calls run per turn; ask for this one again.", isError: true)
                    return (index, output, clock.now - started)
                }
            }
            var finished = 0
            while let (index, output, elapsed) = try await group.next() {
                try Task.checkCancellation()
                finished += 1
                outputs[index] = output
                let use = uses[index]
                var progress = ToolProgress(
                    tool: use.name, toolUseId: use.id, status: output.isError ? .failed : .completed,
                    current: finished, total: uses.count, executionTimeMs: elapsed.inMilliseconds,
                    error: output.isError ? output.content : nil, truncated: output.truncated)
                if details, !output.isError {
                    progress.result = output.content.prefixUTF8(ToolProgress.resultLimit)
                    progress.resultTruncated = output.content.utf8.count > ToolProgress.resultLimit
                }
                try await emit(.toolProgress(progress))
            }
        }
        return zip(uses, outputs).map { use, output in
            var block: [String: JSONValue] = [
                "type": .string("tool_result"),
                "tool_use_id": .string(use.id),
                "content": .string(output?.content ?? ""),
            ]
            if output?.isError == true { block["is_error"] = .bool(true) }
            return .object(block)
        }
    }

    /// A turn as a client may send it back: its text, tool calls and tool results (thinking and anything else the
    /// request format does not take is left out: the API ignores an earlier turn's thinking); `nil` when nothing
    /// is left.
    static func returnable(_ message: ChatMessage) -> ChatMessage? {
        guard case .blocks(let blocks) = message.content else { return message }
        let kept = blocks.filter { ChatRequest.supportedBlockTypes.contains($0["type"]?.stringValue ?? "") }
        return kept.isEmpty ? nil : ChatMessage(role: message.role, content: .blocks(kept))
    }

    /// A tool run as the GenAI conventions' `execute_tool {name}` span, child of the chat's trace (tools a tool
    /// calls, an MCP server's, nest under it). A failed run has `error.type` `tool_error` and the span an error
    /// status.
    static func traced(_ use: ToolUse, captureContent: Bool, _ run: () async -> ToolOutput) async -> ToolOutput {
        await withSpan("execute_tool \(use.name)", ofKind: .internal) { span in
            if span.isRecording {
                span.updateAttributes { attributes in
                    attributes[OTelAttribute.genAi.operation.name] = "execute_tool"
                    attributes[OTelAttribute.genAi.tool.name] = use.name
                    attributes[OTelAttribute.genAi.tool.call.id] = use.id
                    attributes[OTelAttribute.genAi.tool.type] = "function"
                    if captureContent { attributes[OTelAttribute.genAi.tool.call.arguments] = ContentCapture.text(use.input) }
                }
            }
            let output = await run()
            if output.isError {
                span.attributes["error.type"] = "tool_error"
                span.setStatus(SpanStatus(code: .error, message: output.content.prefixUTF8(256)))
            }
            if captureContent, span.isRecording {
                span.attributes[OTelAttribute.genAi.tool.call.result] = ContentCapture.text(.string(output.content))
            }
            return output
        }
    }

    /// Runs one tool with a timeout; every failure becomes an error result the model can read.
    static func execute(_ use: ToolUse, tools: ToolBox, timeout: Duration) async -> ToolOutput {
        guard let tool = tools[use.name] else {
            return ToolOutput(content: "Unknown tool \"\(use.name)\". Available tools: "
                              + tools.definitions.map(\.name).joined(separator: ", "), isError: true)
        }
        do {
            guard let output = try await withTimeout(timeout, { try await tool.execute(use.input) }) else {
                return ToolOutput(content: "The tool \"\(use.name)\" timed out after \(timeout.inMilliseconds) ms.", isError: true)
            }
            return output
        } catch is CancellationError {
            return ToolOutput(content: "The tool \"\(use.name)\" was cancelled.", isError: true)
        } catch {
            return ToolOutput(content: "The tool \"\(use.name)\" failed: \(error)", isError: true)
        }
    }
}

/// An error from the sink: the event could not be delivered, so nothing more is sent.
struct EmitFailure: Error {
    let underlying: any Error
}

/// The loop's sink as a model call sees it: a model's event becomes the stream's (`text_chunk`, `tool_detected`,
/// `routing`), and a failure to deliver becomes an `EmitFailure`, told apart from the model's own failures.
struct ModelEventRelay<Base: EventSink<StreamEvent>>: EventSink {
    let base: Base

    func takeNow(_ event: ModelStreamEvent) throws -> Bool {
        do {
            return try base.takeNow(Self.streamEvent(event))
        } catch {
            throw EmitFailure(underlying: error)
        }
    }

    func take(_ event: ModelStreamEvent) async throws {
        try await send(Self.streamEvent(event))
    }

    /// Gives the sink one of the loop's own events.
    func send(_ event: StreamEvent) async throws {
        do {
            try await base.take(event)
        } catch {
            throw EmitFailure(underlying: error)
        }
    }

    var deadlines: DeadlineKeeper { base.deadlines }

    /// What the stream hears of a model's event.
    static func streamEvent(_ event: ModelStreamEvent) -> StreamEvent {
        switch event {
        case .text(let text): .textChunk(text)
        case .thinking(let text): .thinkingChunk(text)
        case .toolUseStarted(let id, let name): .toolDetected(tool: name, toolUseId: id)
        case .routing(let decision): .routing(decision)
        }
    }
}

extension AgentLoop {
    /// Runs a chat for a caller that awaits each event on its own task.
    public func run(_ chat: ChatRequest, sessionId: String, emit: @escaping @Sendable (StreamEvent) async throws -> Void) async throws {
        try await run(chat, sessionId: sessionId, into: WaitingSink(emit))
    }
}

