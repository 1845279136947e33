import ChatCore
import Synchronization
import Testing
@testable import ChatPipeline

/// A sink at the stream's edge, like a connection: takes events now unless `full` says it is full then, and
/// records how each event arrived.
final class RecordingSink: EventSink, Sendable {
    enum Way: Equatable, Sendable { case now, waited }

    struct Failure: Error {}

    private let log = Mutex<[(String, Way)]>([])
    private let offered = Mutex<[String]>([])
    private let full: @Sendable (String) -> Bool
    private let failsNow: @Sendable (String) -> Bool
    let deadlines: DeadlineKeeper

    /// `full`: the connection cannot take this event now; `failsNow`: writing it where it is read fails.
    init(full: @escaping @Sendable (String) -> Bool = { _ in false }, failsNow: @escaping @Sendable (String) -> Bool = { _ in false },
         deadlines: DeadlineKeeper = .none) {
        self.full = full
        self.failsNow = failsNow
        self.deadlines = deadlines
    }

    /// Each event as `type` or `text_chunk:TEXT`, with the way it was taken.
    var received: [(String, Way)] { log.withLock { $0 } }
    /// The events offered to `takeNow`, taken or not.
    var offeredNow: [String] { offered.withLock { $0 } }

    static func label(_ event: StreamEvent) -> String {
        if case .textChunk(let text) = event { return "text_chunk:\(text)" }
        return event.type
    }

    func takeNow(_ event: StreamEvent) throws -> Bool {
        let label = Self.label(event)
        offered.withLock { $0.append(label) }
        if failsNow(label) { throw Failure() }
        guard !full(label) else { return false }
        log.withLock { $0.append((label, .now)) }
        return true
    }

    func take(_ event: StreamEvent) async throws {
        // A full connection drains before it takes the event.
        await Task.yield()
        log.withLock { $0.append((Self.label(event), .waited)) }
    }
}

private func textTurn(_ pieces: [String], tool: Bool = false) -> ScriptedModel.Step {
    var events = pieces.map { ModelStreamEvent.text($0) }
    if tool { events.append(.toolUseStarted(id: "t1", name: "double")) }
    let content: [JSONValue] = [["type": "text", "text": .string(pieces.joined())]]
    return .turn(events: events, ModelTurn(content: content, toolUses: [], stopReason: .endTurn, usage: Usage(outputTokens: pieces.count)))
}

private func run(_ model: some LanguageModel, into sink: RecordingSink) async throws {
    let loop = AgentLoop(model: model, tools: ToolBox([Doubler()]), configuration: AgentConfiguration(model: "m"))
    try await loop.run(ChatRequest(messages: [ChatMessage(role: .user, content: .text("go"))]), sessionId: "s1", into: sink)
}

@Suite("Agent loop: one event path")
struct EventSinkTests {
    @Test("the model's events are taken where they are read; those the connection cannot take now are awaited, in order")
    func takenNowOrQueued() async throws {
        let sink = RecordingSink(full: { $0 == "text_chunk:b" || $0 == "text_chunk:d" })
        try await run(ScriptedModel([textTurn(["a", "b", "c", "d"], tool: true)]), into: sink)
        #expect(sink.received.map(\.0) == ["session_start", "iteration_start", "text_chunk:a", "text_chunk:b", "text_chunk:c",
                                           "text_chunk:d", "tool_detected", "complete"])
        #expect(sink.received.map(\.1) == [.waited, .waited, .now, .waited, .now, .waited, .now, .waited])
        // Only the model's events are offered where they are read; the loop's own go by its task.
        #expect(sink.offeredNow == ["text_chunk:a", "text_chunk:b", "text_chunk:c", "text_chunk:d", "tool_detected"])
    }

    @Test("a connection that takes nothing now gets every event by the loop's task, in the same order")
    func allQueued() async throws {
        let sink = RecordingSink(full: { _ in true })
        try await run(ScriptedModel([textTurn(["a", "b"])]), into: sink)
        #expect(sink.received.map(\.0) == ["session_start", "iteration_start", "text_chunk:a", "text_chunk:b", "complete"])
        #expect(sink.received.allSatisfy { $0.1 == .waited })
    }

    @Test("a write that fails where the event is read ends the run with the sink's error: no error event, nothing after")
    func failureWhereRead() async throws {
        let sink = RecordingSink(failsNow: { $0 == "text_chunk:b" })
        let model = ScriptedModel([textTurn(["a", "b", "c"])])
        await #expect(throws: RecordingSink.Failure.self) { try await run(model, into: sink) }
        #expect(sink.received.map(\.0) == ["session_start", "iteration_start", "text_chunk:a"])
        #expect(model.requests.count == 1)
    }

    @Test("the sink's owner keeps the model call's deadline: the model arms it through the sink it is given")
    func deadlinesReachTheModel() async throws {
        let armed = Mutex<[Duration]>([])
        let disarmed = Mutex(0)
        let keeper = DeadlineKeeper(arm: { limit, _ in armed.withLock { $0.append(limit) } },
                                    disarm: { disarmed.withLock { $0 += 1 } })
        let sink = RecordingSink(deadlines: keeper)
        try await run(DeadlineModel(), into: sink)
        #expect(armed.withLock { $0 } == [.seconds(7)])
        #expect(disarmed.withLock { $0 } == 1)
        #expect(sink.received.map(\.0) == ["session_start", "iteration_start", "text_chunk:in time", "complete"])
    }
}

/// A model whose call runs under a deadline it asks its sink's owner to keep, as the upstream clients do.
private struct DeadlineModel: LanguageModel {
    func streamTurn(_ request: ModelRequest, into sink: some EventSink<ModelStreamEvent>) async throws -> ModelTurn {
        try await sink.deadlines.enforcing(.seconds(7), error: StreamError(code: .overallTimeout, message: "late", retryable: true)) {
            if try !sink.takeNow(.text("in time")) { try await sink.take(.text("in time")) }
            return ModelTurn(content: [["type": "text", "text": "in time"]], toolUses: [], stopReason: .endTurn, usage: Usage())
        }
    }
}
