import ChatCore
import Foundation
import Testing

@Suite("Chat request")
struct ChatRequestTests {
    @Test("decodes string and block content, system, model and maxTokens")
    func decodes() throws {
        let body = #"""
            {"messages":[
               {"role":"user","content":"hello"},
               {"role":"assistant","content":[{"type":"text","text":"a"},{"type":"tool_use","id":"t1","name":"x","input":{"n":5}},{"type":"text","text":"b"}]}
             ],
             "system":"be brief","model":"claude-haiku-4-5","maxTokens":512,"somethingNew":true}
            """#
        let request = try ChatRequest(json: Data(body.utf8))
        #expect(request.messages.count == 2)
        #expect(request.messages[0] == ChatMessage(role: .user, content: .text("hello")))
        #expect(request.messages[1].text == "a\nb")
        #expect(request.system == "be brief")
        #expect(request.model == "claude-haiku-4-5")
        #expect(request.maxTokens == 512)
        #expect(request.accumulated)
        #expect(try ChatRequest(json: Data(#"{"messages":[{"role":"user","content":"x"}],"accumulated":false}"#.utf8)).accumulated == false)
        guard case .blocks(let blocks) = request.messages[1].content else {
            Issue.record("expected blocks")
            return
        }
        #expect(blocks[1]["input"] == .object(["n": .number(5)]))
    }

    @Test("errors name the field", arguments: [
        ("not json", "body"),
        (#""text""#, "body"),
        (#"{"messages":{}}"#, "messages"),
        (#"{"messages":[1]}"#, "messages[0]"),
        (#"{"messages":[{"role":"system","content":"x"}]}"#, "messages[0].role"),
        (#"{"messages":[{"role":"user","content":[1]}]}"#, "messages[0].content[0]"),
        (#"{"messages":[{"role":"user","content":[{"type":"text","text":null}]}]}"#, "messages[0].content[0].text"),
        (#"{"messages":[{"role":"assistant","content":[{"type":"text","text":null}]}]}"#, "messages[0].content[0].text"),
        (#"{"messages":[{"role":"assistant","content":[{"type":"","text":"x"}]}]}"#, "messages[0].content[0].type"),
        (#"{"messages":[{"role":"user","content":"x"}],"model":""}"#, "model"),
        (#"{"messages":[{"role":"user","content":"x"}],"maxTokens":1.5}"#, "maxTokens"),
        (#"{"messages":[{"role":"user","content":"x"}],"maxTokens":"10"}"#, "maxTokens"),
        (#"{"messages":[{"role":"user","content":"x"}],"accumulated":"no"}"#, "accumulated"),
    ])
    func errors(body: String, field: String) {
        #expect {
            _ = try ChatRequest(json: Data(body.utf8))
        } throws: { error in
            (error as? ChatRequestError)?.field == field
        }
    }

    @Test("only known content blocks: a document, an image or a block by URL is a 400 naming its type", arguments: [
        (#"{"type":"document","source":{"type":"url","url":"http://169.254.169.254/"}}"#, "messages[0].content[1].type"),
        (#"{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}"#, "messages[0].content[1].type"),
        (#"{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}"#, "messages[0].content[1].type"),
        (#"{"type":"tool_result","tool_use_id":"t","content":[{"type":"image","source":{}}]}"#, "messages[0].content[1].content[0].type"),
        (#"{"type":"tool_use","id":"t","name":"x","input":"rm -rf"}"#, "messages[0].content[1].input"),
        (#"{"type":"tool_result","content":"x"}"#, "messages[0].content[1].tool_use_id"),
    ])
    func unknownBlocks(block: String, field: String) {
        let body = #"{"messages":[{"role":"user","content":[{"type":"text","text":"hi"},"# + block + "]}]}"
        #expect {
            _ = try ChatRequest(json: Data(body.utf8))
        } throws: { error in
            (error as? ChatRequestError)?.field == field
        }
    }

    @Test("a client's cache_control and unknown fields are dropped from the blocks kept")
    func cacheControlDropped() throws {
        let body = #"""
            {"messages":[{"role":"user","content":[
              {"type":"text","text":"hi","cache_control":{"type":"ephemeral"},"citations":[]},
              {"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"ok","cache_control":{"type":"ephemeral"}}],
               "cache_control":{"type":"ephemeral"},"is_error":false}]}]}
            """#
        let request = try ChatRequest(json: Data(body.utf8))
        guard case .blocks(let blocks) = request.messages[0].content else {
            Issue.record("expected blocks")
            return
        }
        #expect(blocks[0] == .object(["type": "text", "text": "hi"]))
        #expect(blocks[1] == .object(["type": "tool_result", "tool_use_id": "t1", "is_error": .bool(false),
                                      "content": .array([.object(["type": "text", "text": "ok"])])]))
    }

    @Test("JSON values round-trip, whole numbers without a fraction")
    func jsonRoundTrip() throws {
        let value: JSONValue = .object(["a": .array([.number(1), .number(2.5), .bool(true), .null, .string("é")])])
        let data = try JSONEncoder().encode(value)
        #expect(String(decoding: data, as: UTF8.self) == #"{"a":[1,2.5,true,null,"é"]}"#)
        #expect(try JSONDecoder().decode(JSONValue.self, from: data) == value)
    }

    @Test("timestamps are ISO-8601 UTC with milliseconds")
    func timestamp() {
        #expect(Timestamp.iso8601(Date(timeIntervalSince1970: 1_764_073_463.481)) == "2025-11-25T12:24:23.481Z")
    }
}

@Suite("Timestamps")
struct TimestampTests {
    @Test("agree with Foundation's ISO-8601 formatter across eras", arguments: [
        0.0, 951_782_400.25, 1_709_164_800.875, 4_102_444_799.5, -86_400.0, -1.5,
    ])
    func matchesFoundation(seconds: Double) {
        let date = Date(timeIntervalSince1970: seconds)
        let millis = (seconds * 1000).rounded() / 1000
        let expected = Date(timeIntervalSince1970: millis).formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        #expect(Timestamp.iso8601(date) == expected)
    }
}
