import ChatCore
import Synchronization
import TestSupport
import Testing
@testable import ChatPipeline

/// A model at the protocol's edge: plays scripted turns and records the requests it gets.
final class ScriptedModel: LanguageModel, Sendable {
    enum Step: Sendable {
        case turn(events: [ModelStreamEvent], ModelTurn)
        case fail(StreamError)
        case crash
    }

    private let steps: Mutex<[Step]>
    private let requestLog = Mutex<[ModelRequest]>([])

    init(_ steps: [Step]) {
        self.steps = Mutex(steps)
    }

    var requests: [ModelRequest] { requestLog.withLock { $0 } }

    struct Crash: Error {}

    func streamTurn(_ request: ModelRequest, into sink: some EventSink<ModelStreamEvent>) async throws -> ModelTurn {
        requestLog.withLock { $0.append(request) }
        let step = steps.withLock { $0.isEmpty ? Step.fail(StreamError(code: .internalError, message: "the script ran out", retryable: false)) : $0.removeFirst() }
        switch step {
        case .turn(let events, let turn):
            // As a client reads them: each offered where it is read first, awaited when not taken.
            for event in events where try !sink.takeNow(event) { try await sink.take(event) }
            return turn
        case .fail(let error):
            throw error
        case .crash:
            throw Crash()
        }
    }
}

struct Doubler: Tool {
    var definition: ToolDefinition { ToolDefinition(name: "double", description: "", inputSchema: ["type": "object"]) }
    func execute(_ input: JSONValue) async throws -> ToolOutput {
        ToolOutput(content: "\((input["n"]?.intValue ?? 0) * 2)")
    }
}

private let toolTurn = ModelTurn(
    content: [["type": "tool_use", "id": "t1", "name": "double", "input": ["n": 21]]],
    toolUses: [ToolUse(id: "t1", name: "double", input: ["n": 21])], stopReason: "tool_use",
    usage: Usage(inputTokens: 10, outputTokens: 5))

private func run(_ model: ScriptedModel, maxIterations: Int = 6) async throws -> [StreamEvent] {
    let loop = AgentLoop(model: model, tools: ToolBox([Doubler()]),
                         configuration: AgentConfiguration(model: "m", maxTokens: 100, maxIterations: maxIterations))
    let events = Mutex<[StreamEvent]>([])
    try await loop.run(ChatRequest(messages: [ChatMessage(role: .user, content: .text("double 21"))], system: "s"),
                       sessionId: "s1") { event in events.withLock { $0.append(event) } }
    return events.withLock { $0 }
}

@Suite("Agent loop")
struct AgentLoopTests {
    @Test("tool turn, results back, final answer: events in order, usage summed")
    func toolThenAnswer() async throws {
        let model = ScriptedModel([
            .turn(events: [.toolUseStarted(id: "t1", name: "double")], toolTurn),
            .turn(events: [.text("42")], ModelTurn(content: [["type": "text", "text": "42"]], toolUses: [], stopReason: "end_turn",
                                                     usage: Usage(inputTokens: 20, outputTokens: 2))),
        ])
        let events = try await run(model)
        #expect(events.map(\.type) == ["session_start", "iteration_start", "tool_detected", "tools_executing", "tool_progress",
                                       "tool_progress", "iteration_start", "text_chunk", "complete"])
        guard case .complete(let completion) = events.last else { Issue.record("no complete"); return }
        #expect(completion.iterations == 2)
        #expect(completion.stopReason == "end_turn")
        #expect(completion.usage == Usage(inputTokens: 30, outputTokens: 7))
        let follow = try #require(model.requests.last)
        #expect(follow.system == "s")
        #expect(follow.messages.map(\.role) == [.user, .assistant, .user])
        #expect(follow.messages[1].content == .blocks(toolTurn.content))
        #expect(follow.messages[2].content == .blocks([["type": "tool_result", "tool_use_id": "t1", "content": "42"]]))
    }

    @Test("the iteration limit ends the loop with max_iterations")
    func iterationLimit() async throws {
        let model = ScriptedModel(Array(repeating: .turn(events: [], toolTurn), count: 5))
        let events = try await run(model, maxIterations: 3)
        guard case .complete(let completion) = events.last else { Issue.record("no complete"); return }
        #expect(completion.stopReason == "max_iterations")
        #expect(completion.iterations == 3)
        #expect(model.requests.count == 3)
    }

    @Test("pause_turn sends the turn back and goes on")
    func pauseTurn() async throws {
        let model = ScriptedModel([
            .turn(events: [.text("a")], ModelTurn(content: [["type": "text", "text": "a"]], toolUses: [], stopReason: "pause_turn", usage: Usage())),
            .turn(events: [.text("b")], ModelTurn(content: [["type": "text", "text": "b"]], toolUses: [], stopReason: "end_turn", usage: Usage())),
        ])
        let events = try await run(model)
        #expect(events.map(\.type) == ["session_start", "iteration_start", "text_chunk", "iteration_start", "text_chunk", "complete"])
        #expect(model.requests.last?.messages.last?.role == .assistant)
    }

    @Test("model failures end the stream with an error event", arguments: [
        (ScriptedModel.Step.fail(StreamError(code: .overloaded, message: "busy", retryable: true)), StreamErrorCode.overloaded),
        (ScriptedModel.Step.crash, StreamErrorCode.internalError),
    ])
    func failures(step: ScriptedModel.Step, code: StreamErrorCode) async throws {
        let events = try await run(ScriptedModel([step]))
        #expect(events.map(\.type) == ["session_start", "iteration_start", "error"])
        guard case .error(let error) = events.last else {
            Issue.record("the last event is not an error: \(events.map(\.type))")
            return
        }
        #expect(error.code == code)
    }

    @Test("a tool that is not there fails with the list of tools")
    func unknownTool() async throws {
        let output = await AgentLoop<ScriptedModel>.execute(ToolUse(id: "x", name: "nope", input: [:]), tools: ToolBox([Doubler()]),
                                                            timeout: .seconds(1))
        #expect(output.isError)
        #expect(output.content == "Unknown tool \"nope\". Available tools: double")
    }
}

/// A tool that waits on a gate the test opens, and records when it started, finished or was cancelled.
final class GatedTool: Tool, Sendable {
    enum Event: Equatable, Sendable { case started, finished, cancelled }

    let definition: ToolDefinition
    private let log = Mutex<[Event]>([])
    private let release = AsyncStream<Void>.makeStream()

    init(name: String) {
        definition = ToolDefinition(name: name, description: "", inputSchema: ["type": "object"])
    }

    var events: [Event] { log.withLock { $0 } }
    /// Lets the tool finish.
    func open() { release.continuation.finish() }

    func execute(_ input: JSONValue) async throws -> ToolOutput {
        log.withLock { $0.append(.started) }
        for await _ in release.stream {}
        if Task.isCancelled {
            log.withLock { $0.append(.cancelled) }
            throw CancellationError()
        }
        log.withLock { $0.append(.finished) }
        return ToolOutput(content: definition.name)
    }
}

private func toolCalls(_ names: [String]) -> ModelTurn {
    ModelTurn(content: names.enumerated().map { ["type": "tool_use", "id": .string("t\($0.offset)"), "name": .string($0.element), "input": [:]] },
              toolUses: names.enumerated().map { ToolUse(id: "t\($0.offset)", name: $0.element, input: [:]) },
              stopReason: .toolUse, usage: Usage())
}

private let finalAnswer = ScriptedModel.Step.turn(events: [.text("done")], ModelTurn(
    content: [["type": "text", "text": "done"]], toolUses: [], stopReason: .endTurn, usage: Usage()))

/// The events a run emitted, shared with the task that runs it.
final class EventLog: Sendable {
    private let log = Mutex<[StreamEvent]>([])
    func append(_ event: StreamEvent) { log.withLock { $0.append(event) } }
    var events: [StreamEvent] { log.withLock { $0 } }
}

@Suite("Agent loop: tools")
struct AgentLoopToolTests {
    @Test("a turn's tools run at the same time: both start before either may finish, and results keep the call order")
    func parallelTools() async throws {
        let first = GatedTool(name: "first")
        let second = GatedTool(name: "second")
        let model = ScriptedModel([.turn(events: [], toolCalls(["first", "second"])), finalAnswer])
        let loop = AgentLoop(model: model, tools: ToolBox([first, second]), configuration: AgentConfiguration())
        let events = EventLog()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await loop.run(ChatRequest(messages: [ChatMessage(role: .user, content: .text("go"))]), sessionId: "s") { event in
                    events.append(event)
                }
            }
            // Neither tool can finish until both have started: sequential tools would never get here.
            #expect(await eventually(within: .seconds(10)) { first.events == [.started] && second.events == [.started] })
            second.open()
            #expect(await eventually(within: .seconds(10)) { second.events == [.started, .finished] })
            first.open()
            try await group.waitForAll()
        }
        let progress = events.events.compactMap { event -> ToolProgress? in
            if case .toolProgress(let progress) = event { return progress }
            return nil
        }
        #expect(progress.map(\.status) == [.executing, .executing, .completed, .completed])
        // Reported as they finish: the second first.
        #expect(progress.suffix(2).map(\.tool) == ["second", "first"])
        #expect(progress.suffix(2).map(\.current) == [1, 2])
        let results = try #require(model.requests.last?.messages.last)
        guard case .blocks(let blocks) = results.content else {
            Issue.record("the tool results are not content blocks: \(results.content)")
            return
        }
        #expect(blocks.map { $0["tool_use_id"]?.stringValue } == ["t0", "t1"])
    }

    @Test("a tool past its timeout is cancelled and reported failed; the model hears why and the loop goes on")
    func toolTimeout() async throws {
        let stuck = GatedTool(name: "stuck")
        let model = ScriptedModel([.turn(events: [], toolCalls(["stuck"])), finalAnswer])
        let loop = AgentLoop(model: model, tools: ToolBox([stuck]),
                             configuration: AgentConfiguration(toolTimeout: .milliseconds(50)))
        let events = EventLog()
        try await loop.run(ChatRequest(messages: [ChatMessage(role: .user, content: .text("go"))]), sessionId: "s") { event in
            events.append(event)
        }
        #expect(stuck.events == [.started, .cancelled])
        let failed = events.events.compactMap { event -> ToolProgress? in
            if case .toolProgress(let progress) = event, progress.status == .failed { return progress }
            return nil
        }
        #expect(failed.count == 1)
        #expect(failed.first?.error == "The tool \"stuck\" timed out after 50 ms.")
        #expect((failed.first?.executionTimeMs ?? 0) >= 50)
        guard case .complete = events.events.last else {
            Issue.record("the loop did not complete after the timeout")
            return
        }
        guard case .blocks(let blocks)? = model.requests.last?.messages.last?.content else {
            Issue.record("no tool result went back to the model")
            return
        }
        #expect(blocks.first?["is_error"] == .bool(true))
    }

    @Test("cancelling the caller cancels running tools and sends nothing more: no error event, no next model call")
    func cancellation() async throws {
        let slow = GatedTool(name: "slow")
        let model = ScriptedModel([.turn(events: [], toolCalls(["slow"])), finalAnswer])
        let loop = AgentLoop(model: model, tools: ToolBox([slow]), configuration: AgentConfiguration())
        let events = EventLog()
        let run = Task {
            try await loop.run(ChatRequest(messages: [ChatMessage(role: .user, content: .text("go"))]), sessionId: "s") { event in
                events.append(event)
            }
        }
        #expect(await eventually(within: .seconds(10)) { slow.events == [.started] })
        run.cancel()
        let outcome = await run.result
        #expect(throws: CancellationError.self) { try outcome.get() }
        #expect(slow.events == [.started, .cancelled])
        #expect(model.requests.count == 1)
        #expect(!events.events.contains { if case .error = $0 { true } else { false } })
    }
}

@Suite("Agent loop: caps")
struct AgentLoopCapTests {
    @Test("tool calls past the per-turn cap do not run; the model hears why for each")
    func toolCallsPerTurn() async throws {
        let model = ScriptedModel([
            .turn(events: [], ModelTurn(
                content: (1...4).map { ["type": "tool_use", "id": .string("t\($0)"), "name": "double", "input": ["n": .number(Double($0))]] },
                toolUses: (1...4).map { ToolUse(id: "t\($0)", name: "double", input: ["n": .number(Double($0))]) },
                stopReason: .toolUse, usage: Usage())),
            .turn(events: [.text("done")], ModelTurn(content: [["type": "text", "text": "done"]], toolUses: [], stopReason: .endTurn,
                                                     usage: Usage())),
        ])
        let loop = AgentLoop(model: model, tools: ToolBox([Doubler()]), configuration: AgentConfiguration(maxToolCallsPerTurn: 2))
        let events = EventLog()
        try await loop.run(ChatRequest(messages: [ChatMessage(role: .user, content: .text("double 1 to 4"))]), sessionId: "s") {
            events.append($0)
        }
        guard case .blocks(let results)? = model.requests.last?.messages.last?.content else {
            Issue.record("no tool results went back to the model")
            return
        }
        #expect(results.map { $0["content"]?.stringValue } == [
            "2", "4",
            "Not run: at most 2 tool calls run per turn; ask for this one again.",
            "Not run: at most 2 tool calls run per turn; ask for this one again.",
        ])
        #expect(results.map { $0["is_error"] } == [nil, nil, .bool(true), .bool(true)])
    }
}
