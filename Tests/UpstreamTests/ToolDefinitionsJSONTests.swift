import ChatCore
import NIOCore
import Synchronization
import Testing
@testable import Upstream

/// Tool sets as a server has them: the same names, one schema changed between the two.
private func tools(_ count: Int, schemaVersion: Int = 1) -> [ToolDefinition] {
    (0..<count).map { index in
        ToolDefinition(name: "tool_\(index)", description: "Tool number \(index) \u{2014} \"quoted\"",
                       inputSchema: ["type": "object", "properties": ["limit": ["type": "integer", "maximum": .number(Double(schemaVersion))]]])
    }
}

private func parsed(_ buffer: ByteBuffer) throws -> JSONValue {
    try JSONValue(parsing: String(buffer: buffer))
}

@Suite("Tool definitions rendered once per tool set")
struct ToolDefinitionsJSONTests {
    @Test("the Anthropic body with the cached tools is the body with the tools written in place, with and without breakpoints")
    func anthropicBody() throws {
        for promptCache in [false, true] {
            for set in [tools(0), tools(1), tools(5)] {
                var request = ModelRequest(model: "claude-haiku-4-5", system: "be brief", maxTokens: 256,
                                           messages: [ChatMessage(role: .user, content: .text("hi"))], tools: set)
                request.thinkingBudget = 2048
                // Twice: rendered, then kept.
                for _ in 0..<2 {
                    let body = try parsed(try AnthropicClient.requestBody(request, promptCache: promptCache))
                    guard case .object(var fields) = body else { Issue.record("not an object"); return }
                    let sent = fields.removeValue(forKey: "tools")
                    if set.isEmpty {
                        #expect(sent == nil)
                    } else {
                        // Written out here, not by the client's own renderer: name, description and schema of each, and
                        // with prompt caching a breakpoint on the last one only.
                        let expected: [JSONValue] = set.enumerated().map { index, tool in
                            var fields: [String: JSONValue] = ["name": .string(tool.name), "description": .string(tool.description),
                                                               "input_schema": tool.inputSchema]
                            if promptCache, index == set.count - 1 { fields["cache_control"] = ["type": "ephemeral"] }
                            return .object(fields)
                        }
                        #expect(sent == .array(expected))
                    }
                    #expect(fields["model"] == "claude-haiku-4-5")
                    guard case .array(let messages)? = fields["messages"] else { Issue.record("no messages"); return }
                    #expect(messages.first?["role"] == "user")
                    #expect(fields["thinking"]?["budget_tokens"] == 2048)
                }
            }
        }
    }

    @Test("the OpenAI body carries each tool as a function, from the cache on the second call")
    func openAIBody() throws {
        let set = tools(3)
        let request = ModelRequest(model: "gpt-4o-mini", system: nil, maxTokens: 64, messages: [ChatMessage(role: .user, content: .text("hi"))],
                                   tools: set)
        for _ in 0..<2 {
            let body = try parsed(try OpenAIClient.requestBody(request, maxTokensField: "max_completion_tokens"))
            guard case .array(let sent)? = body["tools"] else { Issue.record("no tools"); return }
            #expect(sent.count == 3)
            for (index, tool) in sent.enumerated() {
                #expect(tool["type"] == "function")
                #expect(tool["function"]?["name"] == .string(set[index].name))
                #expect(tool["function"]?["description"] == .string(set[index].description))
                #expect(tool["function"]?["parameters"] == set[index].inputSchema)
            }
            #expect(body["max_completion_tokens"] == 64)
        }
    }

    @Test("a set is rendered once while it is kept; one whose schema changed is rendered anew, never sent stale; more sets than are kept all stay right")
    func exactSets() {
        let renders = Mutex(0)
        let cache = ToolDefinitionsJSON { set in
            renders.withLock { $0 += 1 }
            return .array(set.map { ["name": .string($0.name), "input_schema": $0.inputSchema] })
        }
        let server = tools(4)
        let once = cache.bytes(for: server)
        for _ in 0..<5 { #expect(cache.bytes(for: server) == once) }
        // An equal set in other storage (a key's subset is rebuilt per chat) is found too.
        #expect(cache.bytes(for: Array(tools(4))) == once)
        #expect(renders.withLock { $0 } == 1)
        let first = cache.bytes(for: tools(2, schemaVersion: 1))
        let changed = cache.bytes(for: tools(2, schemaVersion: 2))
        #expect(first != changed)
        #expect(String(decoding: changed, as: UTF8.self).contains(#""maximum":2"#))
        for round in 0..<3 {
            for count in 1...(ToolDefinitionsJSON.limit + 3) {
                let set = tools(count, schemaVersion: round)
                let expected = JSONValue.array(set.map { ["name": .string($0.name), "input_schema": $0.inputSchema] })
                #expect((try? JSONValue(parsing: String(decoding: cache.bytes(for: set), as: UTF8.self))) == expected)
            }
        }
    }
}
