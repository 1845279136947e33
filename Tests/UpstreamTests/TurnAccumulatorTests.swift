import ChatCore
import Foundation
import Testing
@testable import Upstream

/// What replaying a recorded stream produced: the events the pipeline heard and how the turn ended.
private struct Replay: Equatable {
    var events: [ModelStreamEvent] = []
    var turn: ModelTurn?
    var error: StreamError?
}

/// Feeds a recorded Anthropic stream through the SSE decoder and the turn accumulator, cut into chunks of
/// `chunkSize` bytes (`nil`: the whole file at once), as `AnthropicClient` does with each body part.
private func replay(_ fixture: String, chunkSize: Int?) throws -> Replay {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(fixture)")
    let bytes = [UInt8](try Data(contentsOf: url))
    var decoder = SSEDecoder()
    var accumulator = AnthropicTurnAccumulator()
    var result = Replay()
    var start = 0
    while start < bytes.count, result.error == nil {
        let end = min(bytes.count, start + (chunkSize ?? bytes.count))
        try decoder.feed(bytes[start..<end]) { event in
            guard result.error == nil else { return }
            do throws(StreamError) {
                if let heard = try accumulator.handle(event) { result.events.append(heard) }
            } catch {
                result.error = error
            }
        }
        start = end
    }
    if result.error == nil {
        do throws(StreamError) { result.turn = try accumulator.finish() } catch { result.error = error }
    }
    return result
}

@Suite("Turn accumulator on recorded streams")
struct TurnAccumulatorTests {
    @Test("any chunking gives the same result as the whole stream", arguments: [
        "text.sse", "thinking_tool_use.sse", "max_tokens_cut_tool.sse", "overloaded_mid_stream.sse",
    ])
    func chunkingDoesNotMatter(_ fixture: String) throws {
        let whole = try replay(fixture, chunkSize: nil)
        #expect(try replay(fixture, chunkSize: 1) == whole)
        for size in [2, 3, 7, 64] { #expect(try replay(fixture, chunkSize: size) == whole, "chunks of \(size)") }
    }

    @Test("text: deltas are heard as they come and joined per block; usage is read; pings are ignored")
    func text() throws {
        let result = try replay("text.sse", chunkSize: 1)
        #expect(result.events == [.text("Hello"), .text(", São Paulo 😀 ello frien"), .text("d!\nBye.")])
        let turn = try #require(result.turn)
        #expect(turn.stopReason == .endTurn)
        #expect(turn.usage == Usage(inputTokens: 25, outputTokens: 15))
        #expect(turn.content == [["type": "text", "text": "Hello, São Paulo 😀 ello friend!\nBye."]])
        #expect(turn.toolUses.isEmpty)
    }

    @Test("thinking, text and a tool call: the thinking block keeps its signature; the input is parsed at its stop; cache tokens are counted apart")
    func thinkingAndTool() throws {
        let result = try replay("thinking_tool_use.sse", chunkSize: 1)
        // The thinking is heard as it arrives (the stream's thinking_chunk), before the text.
        #expect(result.events == [.thinking("The user wants employees "), .thinking("with a 5-10% increment."),
                                  .text("Let me look that up."),
                                  .toolUseStarted(id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6", name: "get_employees")])
        let turn = try #require(result.turn)
        #expect(turn.stopReason == .toolUse)
        // Cache reads and writes are counted apart from the input, as Anthropic reports them.
        #expect(turn.usage == Usage(inputTokens: 472, outputTokens: 89, cacheReadTokens: 2048, cacheWriteTokens: 1024))
        let input: JSONValue = ["min_increment_pct": 5, "max_increment_pct": 10, "location": "São Paulo"]
        #expect(turn.toolUses == [ToolUse(id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6", name: "get_employees", input: input)])
        #expect(turn.content.count == 3)
        #expect(turn.content[0] == ["type": "thinking", "thinking": "The user wants employees with a 5-10% increment.",
                                    "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"])
        #expect(turn.content[2]["input"] == input)
        #expect(turn.content[2]["caller"] == ["type": "direct"])
    }

    @Test("a tool call cut by max_tokens is neither run nor sent back")
    func cutToolCall() throws {
        let result = try replay("max_tokens_cut_tool.sse", chunkSize: 1)
        #expect(result.events == [.toolUseStarted(id: "toolu_cut", name: "get_employees")])
        let turn = try #require(result.turn)
        #expect(turn.stopReason == .maxTokens)
        #expect(turn.toolUses.isEmpty)
        #expect(turn.content.isEmpty)
    }

    @Test("an error event mid-stream (CRLF lines) keeps the text before it and ends with its code")
    func midStreamError() throws {
        let result = try replay("overloaded_mid_stream.sse", chunkSize: 1)
        #expect(result.events == [.text("Part")])
        #expect(result.turn == nil)
        #expect(result.error?.code == .overloaded)
        #expect(result.error?.retryable == true)
    }
}

@Suite("Upstream caps")
struct UpstreamCapTests {
    private func delta(_ index: Int, _ type: String, _ field: String, _ value: String) -> ServerSentEvent {
        ServerSentEvent(event: "content_block_delta", data: #"{"type":"content_block_delta","index":\#(index),"delta":{"type":"\#(type)","\#(field)":"\#(value)"}}"#)
    }

    @Test("a turn's text is capped: past it, the turn fails instead of growing")
    func textCap() throws {
        var accumulator = AnthropicTurnAccumulator()
        _ = try accumulator.handle(ServerSentEvent(event: "content_block_start",
                                                   data: #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#))
        let piece = String(repeating: "a", count: 64 << 10)
        var failure: StreamError?
        for _ in 0..<100 where failure == nil {
            do throws(StreamError) { _ = try accumulator.handle(delta(0, "text_delta", "text", piece)) } catch { failure = error }
        }
        #expect(failure?.code == .upstreamProtocolError)
    }

    @Test("a turn's tool input is capped too")
    func toolInputCap() throws {
        var accumulator = AnthropicTurnAccumulator()
        _ = try accumulator.handle(ServerSentEvent(event: "content_block_start", data:
            #"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"x","input":{}}}"#))
        let piece = String(repeating: "b", count: 64 << 10)
        var failure: StreamError?
        for _ in 0..<20 where failure == nil {
            do throws(StreamError) { _ = try accumulator.handle(delta(0, "input_json_delta", "partial_json", piece)) } catch { failure = error }
        }
        #expect(failure?.code == .upstreamProtocolError)
    }

    @Test("an event whose data lines add up past the cap is refused, whatever its lines' lengths")
    func eventCap() {
        var decoder = SSEDecoder()
        let line = "data: " + String(repeating: "x", count: 1 << 20) + "\n"
        #expect(throws: SSEDecoder.LineTooLong.self) {
            for _ in 0..<5 { try decoder.feed(Array(line.utf8)) { _ in } }
        }
    }
}
