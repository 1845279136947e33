import ChatCore
import Testing
@testable import Upstream

/// What feeding chunks produced: the events the pipeline heard and how the turn ended.
private struct Fed {
    var events: [ModelStreamEvent] = []
    var turn: ModelTurn?
    var error: StreamError?

    var calls: [ToolUse] { turn?.toolUses ?? [] }
}

/// Feeds `chunks` (each one `data:` payload, as the SSE decoder hands them over) to a fresh accumulator.
private func feed(_ chunks: [String]) -> Fed {
    var accumulator = OpenAITurnAccumulator()
    var fed = Fed()
    do throws(StreamError) {
        for chunk in chunks { try accumulator.handle(chunk) { fed.events.append($0) } }
        fed.turn = try accumulator.finish()
    } catch {
        fed.error = error
    }
    return fed
}

/// A chunk with one choice whose delta is `delta` (JSON), and `finish` as its finish reason.
private func chunk(_ delta: String, finish: String? = nil) -> String {
    #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":\#(delta),"finish_reason":\#(finish.map { "\"\($0)\"" } ?? "null")}]}"#
}

private func call(_ fields: String) -> String { #"{"tool_calls":[\#(fields)]}"# }

@Suite("OpenAI-compatible turn accumulator")
struct OpenAITurnAccumulatorTests {
    @Test("text as it arrives, the usage chunk (choices empty) read, cached tokens taken out of the input")
    func textAndUsage() throws {
        let fed = feed([
            chunk(#"{"role":"assistant","content":""}"#), chunk(#"{"content":"Hel"}"#), chunk(#"{"content":"lo"}"#),
            chunk("{}", finish: "stop"),
            #"{"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":120,"completion_tokens":7,"total_tokens":127,"prompt_tokens_details":{"cached_tokens":100}}}"#,
            "[DONE]",
        ])
        #expect(fed.events == [.text("Hel"), .text("lo")])
        let turn = try #require(fed.turn)
        #expect(turn.stopReason == .endTurn)
        #expect(turn.usage == Usage(inputTokens: 20, outputTokens: 7, cacheReadTokens: 100))
        #expect(turn.content == [.object(["type": "text", "text": "Hello"])])
    }

    @Test("OpenAI's tool calls: id and name once, then argument fragments; parallel calls by index")
    func openAIToolCalls() throws {
        let fed = feed([
            chunk(call(#"{"index":0,"id":"call_a","type":"function","function":{"name":"get_employee","arguments":""}}"#)),
            chunk(call(#"{"index":0,"function":{"arguments":"{\"id\":"}}"#)),
            chunk(call(#"{"index":0,"function":{"arguments":"7}"}}"#)),
            chunk(call(#"{"index":1,"id":"call_b","type":"function","function":{"name":"get_departments","arguments":""}}"#)),
            chunk(call(#"{"index":1,"function":{"arguments":"{}"}}"#)),
            chunk("{}", finish: "tool_calls"), "[DONE]",
        ])
        #expect(fed.events == [.toolUseStarted(id: "call_a", name: "get_employee"), .toolUseStarted(id: "call_b", name: "get_departments")])
        #expect(fed.calls == [ToolUse(id: "call_a", name: "get_employee", input: ["id": 7]),
                              ToolUse(id: "call_b", name: "get_departments", input: [:])])
        #expect(fed.turn?.stopReason == .toolUse)
        #expect(fed.turn?.content.last?["type"] == "tool_use")
    }

    @Test("Ollama 0.20: every parallel call at index 0 with its own id and name: two calls, not one")
    func ollamaSameIndex() {
        let fed = feed([
            chunk(call(#"{"index":0,"id":"call_1","function":{"name":"a","arguments":"{\"x\":1}"}}"#)),
            chunk(call(#"{"index":0,"id":"call_2","function":{"name":"b","arguments":"{\"y\":2}"}}"#)),
            chunk("{}", finish: "stop"), "[DONE]",
        ])
        #expect(fed.calls == [ToolUse(id: "call_1", name: "a", input: ["x": 1]), ToolUse(id: "call_2", name: "b", input: ["y": 2])])
        #expect(fed.turn?.stopReason == .toolUse, "a tool call makes it tool_use although the server said stop")
    }

    @Test("Ollama ≤ 0.4.6 and Gemini: no index; calls told apart by id; an id-less fragment continues the last")
    func noIndex() {
        let fed = feed([
            chunk(call(#"{"id":"g1","function":{"name":"a","arguments":"{\"x\":"}}"#)),
            chunk(call(#"{"function":{"arguments":"1}"}}"#)),
            chunk(call(#"{"id":"g2","function":{"name":"b","arguments":"{}"}}"#)),
            chunk("{}", finish: "stop"),
        ])
        #expect(fed.calls == [ToolUse(id: "g1", name: "a", input: ["x": 1]), ToolUse(id: "g2", name: "b", input: [:])])
    }

    @Test("an id that changes mid-call (LM Studio, Kimi) does not start a new call while the arguments are unfinished")
    func idChangesMidCall() {
        let fed = feed([
            chunk(call(#"{"index":0,"id":"first","function":{"name":"a","arguments":"{\"x\""}}"#)),
            chunk(call(#"{"index":0,"id":"second","function":{"arguments":":1}"}}"#)),
            chunk("{}", finish: "tool_calls"), "[DONE]",
        ])
        #expect(fed.calls == [ToolUse(id: "first", name: "a", input: ["x": 1])])
    }

    @Test("vLLM: later fragments with an empty id, and a finish chunk repeating id and name with the rest of the arguments")
    func vllm() {
        let fed = feed([
            chunk(call(#"{"index":0,"id":"chatcmpl-tool-1","type":"function","function":{"name":"a","arguments":"{\"x\":"}}"#)),
            chunk(call(#"{"index":0,"id":"","function":{"arguments":"1,"}}"#)),
            chunk(call(#"{"index":0,"id":"chatcmpl-tool-1","type":"function","function":{"name":"a","arguments":"\"y\":2}"}}"#),
                  finish: "tool_calls"),
            "[DONE]",
        ])
        #expect(fed.calls == [ToolUse(id: "chatcmpl-tool-1", name: "a", input: ["x": 1, "y": 2])])
        #expect(fed.events == [.toolUseStarted(id: "chatcmpl-tool-1", name: "a")])
    }

    @Test("llama-server: the full name on every fragment is not repeated into it; reasoning_content kept as thinking, not text")
    func llamaServer() {
        let fed = feed([
            chunk(#"{"reasoning_content":"Let me look."}"#),
            chunk(call(#"{"index":0,"id":"x","function":{"name":"get_salary_stats","arguments":"{\"by\":"}}"#)),
            chunk(call(#"{"index":0,"function":{"name":"get_salary_stats","arguments":"\"department\"}"}}"#)),
            chunk("{}", finish: "tool_calls"),
            // Builds before September 2024 end without [DONE]: the finish reason is enough.
        ])
        #expect(fed.calls == [ToolUse(id: "x", name: "get_salary_stats", input: ["by": "department"])])
        #expect(fed.turn?.content.first == .object(["type": "thinking", "thinking": "Let me look."]))
        #expect(!fed.events.contains(.text("Let me look.")))
    }

    @Test("LiteLLM: an id on every fragment and the whole call repeated at the end: one call, arguments once")
    func litellm() {
        let fed = feed([
            chunk(call(#"{"index":0,"id":"call_z","function":{"name":"a","arguments":"{\"x\":"}}"#)),
            chunk(call(#"{"index":0,"id":"call_z","function":{"arguments":"1}"}}"#)),
            chunk(call(#"{"index":0,"id":"call_z","function":{"name":"a","arguments":"{\"x\": 1}"}}"#)),
            chunk("{}", finish: "tool_calls"), "[DONE]",
        ])
        #expect(fed.calls == [ToolUse(id: "call_z", name: "a", input: ["x": 1])])
    }

    @Test("Groq and Mistral: a whole call per chunk, content beside the finish reason; arguments sent as an object")
    func wholeCallsAndObjectArguments() {
        let fed = feed([
            chunk(#"{"content":"Looking","tool_calls":[{"index":0,"id":"m1","function":{"name":"a","arguments":{"x":1}}}]}"#, finish: "tool_calls"),
            "[DONE]",
        ])
        #expect(fed.events == [.text("Looking"), .toolUseStarted(id: "m1", name: "a")])
        #expect(fed.calls == [ToolUse(id: "m1", name: "a", input: ["x": 1])])
    }

    @Test("a turn cut by length runs no tool; invalid arguments are never run; content_filter is a refusal")
    func cutAndInvalid() {
        let cut = feed([chunk(call(#"{"index":0,"id":"c","function":{"name":"a","arguments":"{\"x\":1}"}}"#)), chunk("{}", finish: "length"), "[DONE]"])
        #expect(cut.calls.isEmpty)
        #expect(cut.turn?.stopReason == .maxTokens)
        let invalid = feed([chunk(call(#"{"index":0,"id":"c","function":{"name":"a","arguments":"{\"x\":"}}"#)), chunk("{}", finish: "tool_calls"), "[DONE]"])
        #expect(invalid.calls.isEmpty)
        #expect(invalid.turn?.content.isEmpty == true)
        let filtered = feed([chunk(#"{"refusal":"I can't help with that."}"#), chunk("{}", finish: "content_filter"), "[DONE]"])
        #expect(filtered.turn?.stopReason == .refusal)
        #expect(filtered.events == [.text("I can't help with that.")])
    }

    @Test("the last finish reason wins and usage may follow it (OpenRouter); a stream cut before either is an error")
    func finishAndTruncation() {
        let late = feed([chunk(#"{"content":"a"}"#, finish: "stop"), chunk(#"{"content":"b"}"#, finish: "stop"),
                         #"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#, "[DONE]"])
        #expect(late.turn?.usage == Usage(inputTokens: 3, outputTokens: 2))
        #expect(late.events == [.text("a"), .text("b")])
        let cut = feed([chunk(#"{"content":"partial"}"#)])
        #expect(cut.error?.code == .upstreamStreamEnded)
        #expect(cut.events == [.text("partial")], "what arrived was delivered")
    }

    @Test("an error after the 200 ends the turn with the provider's meaning, string or numeric code")
    func errorsMidStream() {
        let openAI = feed([chunk(#"{"content":"a"}"#), #"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#])
        #expect(openAI.error?.code == .rateLimited)
        #expect(openAI.error?.retryable == true)
        let vllm = feed([#"{"error":{"message":"boom","type":"InternalServerError","code":500}}"#])
        #expect(vllm.error?.code == .upstreamError)
        #expect(vllm.error?.retryable == true)
        let oldVLLM = feed([#"{"object":"error","message":"This model's maximum context length is 4096 tokens","type":"BadRequestError","code":400}"#])
        #expect(oldVLLM.error?.code == .upstreamRejected)
        let quota = feed([#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#])
        #expect(quota.error?.retryable == false)
        #expect(feed(["not json"]).error?.code == .upstreamProtocolError)
    }

    @Test("unknown keys are ignored (obfuscation, timings, provider, stop_reason) and an empty first chunk (Azure) is fine")
    func unknownKeys() {
        let fed = feed([
            #"{"id":"x","choices":[],"prompt_filter_results":[]}"#,
            #"{"id":"x","object":"chat.completion.chunk","obfuscation":"abc","timings":{"n":1},"provider":"p","choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":null,"stop_reason":null}]}"#,
            chunk("{}", finish: "stop"), "[DONE]",
        ])
        #expect(fed.events == [.text("ok")])
        #expect(fed.turn?.stopReason == .endTurn)
    }

    @Test("tool input beyond the cap is refused")
    func toolInputCap() {
        let huge = String(repeating: "a", count: TurnSize.maxToolInputBytes)
        let fed = feed([chunk(call(#"{"index":0,"id":"c","function":{"name":"a","arguments":"\"\#(huge)"}}"#)),
                        chunk(call(#"{"index":0,"function":{"arguments":"more"}}"#))])
        #expect(fed.error?.code == .upstreamProtocolError)
    }
}
