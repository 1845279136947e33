import ChatCore
import Foundation
import Testing

@Suite("Content capture for spans")
struct ContentCaptureTests {
    @Test("a call's messages in the GenAI conventions' shape: system first, text, tool calls and tool results as parts")
    func inputShape() throws {
        let request = ModelRequest(model: "m", system: "Be brief.", maxTokens: 10, messages: [
            ChatMessage(role: .user, content: .text("How many?")),
            ChatMessage(role: .assistant, content: .blocks([["type": "text", "text": "Looking."],
                                                           ["type": "tool_use", "id": "t1", "name": "count", "input": ["a": 1]]])),
            ChatMessage(role: .user, content: .blocks([["type": "tool_result", "tool_use_id": "t1", "content": "4"]])),
        ], tools: [])
        let json = try JSONSerialization.jsonObject(with: Data(ContentCapture.input(request).utf8)) as? [[String: Any]]
        let messages = try #require(json)
        #expect(messages.map { $0["role"] as? String } == ["system", "user", "assistant", "user"])
        let parts = messages.map { ($0["parts"] as? [[String: Any]] ?? []) }
        #expect(parts[0].first?["content"] as? String == "Be brief.")
        #expect(parts[1].first?["type"] as? String == "text")
        #expect(parts[2].map { $0["type"] as? String } == ["text", "tool_call"])
        #expect(parts[2].last?["name"] as? String == "count")
        #expect((parts[2].last?["arguments"] as? [String: Any])?["a"] as? Int == 1)
        #expect(parts[3].first?["type"] as? String == "tool_call_response")
        #expect(parts[3].first?["id"] as? String == "t1")
        #expect(parts[3].first?["response"] as? String == "4")
    }

    @Test("an answer names its finish reason; anything past the limit is cut on a character boundary")
    func outputAndLimit() throws {
        let turn = ModelTurn(content: [["type": "text", "text": "Four."]], toolUses: [], stopReason: .endTurn, usage: Usage())
        let output = try #require(JSONSerialization.jsonObject(with: Data(ContentCapture.output(turn).utf8)) as? [[String: Any]])
        #expect(output.first?["finish_reason"] as? String == "end_turn")
        #expect(output.first?["role"] as? String == "assistant")
        let long = ContentCapture.text(.string(String(repeating: "é", count: ContentCapture.limit)))
        #expect(long.utf8.count <= ContentCapture.limit)
        #expect(long.utf8.count > ContentCapture.limit - 4)
        #expect(long.hasPrefix("\"éé"))
    }
}
