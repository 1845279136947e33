import ChatCore

/// `POST /v1/messages` bodies (Anthropic Messages), read into Switchboard's chat. The messages are already
/// Switchboard's shape, and are checked the same way (`text`, `tool_use` and `tool_result` blocks; a block of
/// another type, an image say, is refused naming it); `system` may be a string or text blocks. Sampling fields
/// (`temperature`, `top_k`, `tool_choice`, `metadata`, …) are accepted and not passed on: the route decides.
public enum AnthropicMessagesRequest {
    public static func parse(json body: some Collection<UInt8>) throws(ChatRequestError) -> DialectRequest {
        try parse(parseBody(body))
    }

    public static func parse(_ value: JSONValue) throws(ChatRequestError) -> DialectRequest {
        let body = try FieldReader(value, path: "")
        let model = try body.model()
        guard let maxTokens = try body.tokenLimit("max_tokens") else {
            throw ChatRequestError(field: "max_tokens", message: "required: a whole number from 1 to 1000000")
        }
        var chat = try ChatRequest(validating: ["messages": body.fields["messages"] ?? .null])
        chat.system = try system(body)
        chat.maxTokens = maxTokens
        chat.accumulated = false
        if let declared = try body.array("tools"), !declared.isEmpty {
            var definitions: [ToolDefinition] = []
            for (index, tool) in declared.enumerated() { definitions.append(try toolDefinition(tool, path: "tools[\(index)]")) }
            chat.clientTools = definitions
        }
        return DialectRequest(chat: chat, model: model, stream: try body.bool("stream") ?? false, includeUsage: true)
    }

    /// `system`: a string, or an array of text blocks (joined with blank lines).
    private static func system(_ body: FieldReader) throws(ChatRequestError) -> String? {
        switch body.fields["system"] {
        case nil, .null?: return nil
        case .string(let text)?: return text
        case .array(let blocks)?:
            var texts: [String] = []
            for (index, block) in blocks.enumerated() {
                let reader = try FieldReader(block, path: "system[\(index)]")
                guard try reader.requiredString("type") == "text" else {
                    throw ChatRequestError(field: reader.name("type"), message: "system blocks must be text blocks")
                }
                texts.append(try reader.requiredString("text"))
            }
            return texts.joined(separator: "\n\n")
        case let other?:
            throw ChatRequestError(field: "system", message: "expected a string or an array of text blocks, found \(other.typeName)")
        }
    }

    /// A declared `tools[i]` (`{name, description, input_schema}`). Anthropic's server tools (a `type` such as
    /// `web_search_20250305`) are refused: Switchboard offers its own tools when a request declares none.
    private static func toolDefinition(_ value: JSONValue, path: String) throws(ChatRequestError) -> ToolDefinition {
        let tool = try FieldReader(value, path: path)
        if let type = try tool.string("type"), type != "custom" {
            throw ChatRequestError(field: tool.name("type"), message: "unsupported tool type \"\(type)\"; declare client tools "
                                   + "with name, description and input_schema")
        }
        let name = try tool.requiredString("name")
        guard !name.isEmpty else { throw ChatRequestError(field: tool.name("name"), message: "must not be empty") }
        guard let schema = tool.fields["input_schema"] else {
            throw ChatRequestError(field: tool.name("input_schema"), message: "required: the JSON Schema of the tool's input")
        }
        guard case .object = schema else {
            throw ChatRequestError(field: tool.name("input_schema"), message: "expected a JSON Schema object, found \(schema.typeName)")
        }
        return ToolDefinition(name: name, description: try tool.string("description") ?? "", inputSchema: schema)
    }
}
