import ChatCore
import Dialects
import Foundation
import Testing

@Suite("The SDKs' requests, read")
struct DialectRequestTests {
    private func openAI(_ json: String) throws(ChatRequestError) -> DialectRequest {
        try OpenAIChatRequest.parse(json: Array(json.utf8))
    }

    private func anthropic(_ json: String) throws(ChatRequestError) -> DialectRequest {
        try AnthropicMessagesRequest.parse(json: Array(json.utf8))
    }

    private func refusal(_ body: () throws(ChatRequestError) -> DialectRequest) -> ChatRequestError? {
        do {
            _ = try body()
            return nil
        } catch {
            return error
        }
    }

    @Test("OpenAI: system and developer messages are the system prompt; a tool round becomes tool_use and one user turn of tool_results")
    func openAIConversation() throws {
        let asked = try openAI("""
            {"model":"auto","stream":true,"stream_options":{"include_usage":true},"max_tokens":50,"max_completion_tokens":80,
             "temperature":0.2,"messages":[
              {"role":"system","content":"Be brief."},{"role":"developer","content":[{"type":"text","text":"Use tools."}]},
              {"role":"user","content":"weather in Paris and Rome?"},
              {"role":"assistant","content":null,"tool_calls":[
                {"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}},
                {"id":"c2","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Rome\\"}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"18"},{"role":"tool","tool_call_id":"c2","content":"24"}],
             "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object"}}}]}
            """)
        #expect(asked.model == "auto" && asked.stream && asked.includeUsage)
        #expect(asked.chat.system == "Be brief.\n\nUse tools.")
        #expect(asked.chat.maxTokens == 80, "max_completion_tokens wins over the older max_tokens")
        #expect(asked.chat.model == nil && !asked.chat.accumulated)
        #expect(asked.chat.clientTools == [ToolDefinition(name: "get_weather", description: "Weather", inputSchema: ["type": "object"])])
        #expect(asked.chat.messages.map(\.role) == [.user, .assistant, .user])
        guard case .blocks(let calls) = asked.chat.messages[1].content, case .blocks(let results) = asked.chat.messages[2].content else {
            Issue.record("expected blocks")
            return
        }
        #expect(calls == [["type": "tool_use", "id": "c1", "name": "get_weather", "input": ["city": "Paris"]],
                          ["type": "tool_use", "id": "c2", "name": "get_weather", "input": ["city": "Rome"]]])
        #expect(results == [["type": "tool_result", "tool_use_id": "c1", "content": "18"],
                            ["type": "tool_result", "tool_use_id": "c2", "content": "24"]])
    }

    @Test("OpenAI: no tools declared means Switchboard's tools; an empty list too")
    func openAINoTools() throws {
        #expect(try openAI(#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#).chat.clientTools == nil)
        #expect(try openAI(#"{"model":"fast","tools":[],"messages":[{"role":"user","content":"hi"}]}"#).chat.clientTools == nil)
    }

    @Test("OpenAI: every refusal names the field as the request spells it", arguments: [
        (#"{"messages":[{"role":"user","content":"hi"}]}"#, "model"),
        (#"{"model":"auto","messages":[]}"#, "messages"),
        (#"{"model":"auto","messages":[{"role":"system","content":"x"}]}"#, "messages"),
        (#"{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{}}]}]}"#,
         "messages[0].content[1].type"),
        (#"{"model":"auto","messages":[{"role":"wizard","content":"hi"}]}"#, "messages[0].role"),
        (#"{"model":"auto","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{oops"}}]}]}"#,
         "messages[1].tool_calls[0].function.arguments"),
        (#"{"model":"auto","messages":[{"role":"tool","content":"x"}]}"#, "messages[0].tool_call_id"),
        (#"{"model":"auto","n":2,"messages":[{"role":"user","content":"hi"}]}"#, "n"),
        (#"{"model":"auto","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}"#, "max_tokens"),
        (#"{"model":"auto","stream":"yes","messages":[{"role":"user","content":"hi"}]}"#, "stream"),
        (#"{"model":"auto","tools":[{"type":"retrieval"}],"messages":[{"role":"user","content":"hi"}]}"#, "tools[0].type"),
        (#"{"model":"auto","tools":[{"type":"function","function":{"name":"f","parameters":[]}}],"messages":[{"role":"user","content":"hi"}]}"#,
         "tools[0].function.parameters"),
        ("not json", "body"),
    ])
    func openAIRefusals(body: String, field: String) {
        #expect(refusal { () throws(ChatRequestError) in try openAI(body) }?.field == field, "\(body)")
    }

    @Test("Anthropic: the messages as they are, system as text or blocks, max_tokens required, the client's tools")
    func anthropicConversation() throws {
        let asked = try anthropic("""
            {"model":"claude-haiku-4-5","max_tokens":100,"stream":true,"system":[{"type":"text","text":"A"},{"type":"text","text":"B"}],
             "messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},
                         {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"done"}]}],
             "tools":[{"name":"f","description":"F","input_schema":{"type":"object"}}]}
            """)
        #expect(asked.model == "claude-haiku-4-5" && asked.stream)
        #expect(asked.chat.system == "A\n\nB" && asked.chat.maxTokens == 100)
        #expect(asked.chat.messages.count == 3 && asked.chat.clientTools?.map(\.name) == ["f"])
    }

    @Test("Anthropic: every refusal names the field", arguments: [
        (#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#, "max_tokens"),
        (#"{"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#, "model"),
        (#"{"model":"auto","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{}}]}]}"#, "messages[0].content[0].type"),
        (#"{"model":"auto","max_tokens":5,"system":7,"messages":[{"role":"user","content":"hi"}]}"#, "system"),
        (#"{"model":"auto","max_tokens":5,"tools":[{"type":"web_search_20250305","name":"web"}],"messages":[{"role":"user","content":"hi"}]}"#,
         "tools[0].type"),
        (#"{"model":"auto","max_tokens":5,"tools":[{"name":"f"}],"messages":[{"role":"user","content":"hi"}]}"#, "tools[0].input_schema"),
    ])
    func anthropicRefusals(body: String, field: String) {
        #expect(refusal { () throws(ChatRequestError) in try anthropic(body) }?.field == field, "\(body)")
    }
}
