import ChatCore
import Synchronization
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

    func streamTurn(_ request: ModelRequest, onEvent: (ModelStreamEvent) async throws -> Void) async throws -> ModelTurn {
        requestLog.withLock { $0.append(request) }
        let step = steps.withLock { $0.isEmpty ? Step.fail(StreamError(code: .internalError, message: "the script ran out", retryable: false)) : $0.removeFirst() }
        switch step {
        case .turn(let events, let turn):
            for event in events { try await onEvent(event) }
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
