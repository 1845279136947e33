import ChatCore

/// `POST /v1/chat/completions` bodies (OpenAI Chat Completions), read into Switchboard's chat.
///
/// `system` and `developer` messages become the system prompt (joined with blank lines); a `user` message's text
/// parts its content; an `assistant` message's `tool_calls` become `tool_use` blocks (their `arguments` must be a
/// JSON object); consecutive `tool` messages become one user turn of `tool_result` blocks. Sampling fields
/// (`temperature`, `top_p`, `tool_choice`, …) are accepted and not passed on: the route decides. What Switchboard
/// cannot do is refused naming the field: images and audio, `n` above 1.
public enum OpenAIChatRequest {
    public static func parse(json body: some Collection<UInt8>) throws(ChatRequestError) -> DialectRequest {
        try parse(parseBody(body))
    }

    public static func parse(_ value: JSONValue) throws(ChatRequestError) -> DialectRequest {
        let body = try FieldReader(value, path: "")
        let model = try body.model()
        guard let items = try body.array("messages") else {
            throw ChatRequestError(field: "messages", message: "required: an array of messages")
        }
        guard !items.isEmpty else { throw ChatRequestError(field: "messages", message: "must contain at least one message") }
        var system: [String] = []
        var messages: [ChatMessage] = []
        /// Tool results waiting to become one user turn.
        var results: [JSONValue] = []
        func flushResults() {
            if !results.isEmpty { messages.append(ChatMessage(role: .user, content: .blocks(results))) }
            results = []
        }
        for (index, item) in items.enumerated() {
            let message = try FieldReader(item, path: "messages[\(index)]")
            let role = try message.requiredString("role")
            if role != "tool" { flushResults() }
            switch role {
            case "system", "developer":
                system.append(try text(of: message, allowNull: false))
            case "user":
                messages.append(ChatMessage(role: .user, content: .text(try text(of: message, allowNull: false))))
            case "assistant":
                var blocks: [JSONValue] = []
                let content = try text(of: message, allowNull: true)
                if !content.isEmpty { blocks.append(["type": "text", "text": .string(content)]) }
                for (callIndex, call) in (try message.array("tool_calls") ?? []).enumerated() {
                    blocks.append(try toolUse(call, path: message.name("tool_calls[\(callIndex)]")))
                }
                guard !blocks.isEmpty else {
                    throw ChatRequestError(field: message.name("content"), message: "an assistant message needs content or tool_calls")
                }
                messages.append(ChatMessage(role: .assistant, content: .blocks(blocks)))
            case "tool":
                let id = try message.requiredString("tool_call_id")
                results.append(["type": "tool_result", "tool_use_id": .string(id),
                                "content": .string(try text(of: message, allowNull: false))])
            default:
                throw ChatRequestError(field: message.name("role"),
                                       message: "unknown role \"\(role)\"; expected system, developer, user, assistant or tool")
            }
        }
        flushResults()
        guard !messages.isEmpty else {
            throw ChatRequestError(field: "messages", message: "must contain a user message, not only system messages")
        }
        if let n = body.fields["n"], n != .null, n.intValue != 1 {
            throw ChatRequestError(field: "n", message: "Switchboard answers with one choice; n must be 1")
        }
        var maxTokens = try body.tokenLimit("max_completion_tokens")
        if maxTokens == nil { maxTokens = try body.tokenLimit("max_tokens") }
        let stream = try body.bool("stream") ?? false
        var includeUsage = false
        if let options = body.fields["stream_options"], options != .null {
            includeUsage = try FieldReader(options, path: "stream_options").bool("include_usage") ?? false
        }
        var tools: [ToolDefinition]?
        if let declared = try body.array("tools"), !declared.isEmpty {
            var definitions: [ToolDefinition] = []
            for (index, tool) in declared.enumerated() { definitions.append(try toolDefinition(tool, path: "tools[\(index)]")) }
            tools = definitions
        }
        let chat = ChatRequest(messages: messages, system: system.isEmpty ? nil : system.joined(separator: "\n\n"),
                               maxTokens: maxTokens, accumulated: false, clientTools: tools)
        return DialectRequest(chat: chat, model: model, stream: stream, includeUsage: includeUsage)
    }

    /// A message's `content`: a string, or an array of `text` parts (joined); `null` only where allowed.
    private static func text(of message: FieldReader, allowNull: Bool) throws(ChatRequestError) -> String {
        switch message.fields["content"] {
        case nil, .null?:
            if allowNull { return "" }
            throw ChatRequestError(field: message.name("content"), message: "required: a string or an array of text parts")
        case .string(let text)?:
            return text
        case .array(let parts)?:
            var texts: [String] = []
            for (index, part) in parts.enumerated() {
                let reader = try FieldReader(part, path: message.name("content[\(index)]"))
                let type = try reader.requiredString("type")
                guard type == "text" else {
                    throw ChatRequestError(field: reader.name("type"),
                                           message: "unsupported content part \"\(type)\"; Switchboard takes text parts only")
                }
                texts.append(try reader.requiredString("text"))
            }
            return texts.joined(separator: "\n")
        case let other?:
            throw ChatRequestError(field: message.name("content"), message: "expected a string or an array of text parts, found \(other.typeName)")
        }
    }

    /// An assistant's `tool_calls[i]` as a `tool_use` block.
    private static func toolUse(_ value: JSONValue, path: String) throws(ChatRequestError) -> JSONValue {
        let call = try FieldReader(value, path: path)
        let id = try call.requiredString("id")
        guard let functionValue = call.fields["function"] else {
            throw ChatRequestError(field: call.name("function"), message: "required: {name, arguments}")
        }
        let function = try FieldReader(functionValue, path: call.name("function"))
        let name = try function.requiredString("name")
        let arguments = try function.string("arguments") ?? "{}"
        let input: JSONValue
        do {
            input = try JSONValue(parsing: arguments.isEmpty ? "{}" : arguments)
        } catch {
            throw ChatRequestError(field: function.name("arguments"), message: "expected a JSON object as a string: \(error)")
        }
        guard case .object = input else {
            throw ChatRequestError(field: function.name("arguments"), message: "expected a JSON object, found \(input.typeName)")
        }
        return ["type": "tool_use", "id": .string(id), "name": .string(name), "input": input]
    }

    /// A declared `tools[i]` (`{"type":"function","function":{name, description, parameters}}`).
    private static func toolDefinition(_ value: JSONValue, path: String) throws(ChatRequestError) -> ToolDefinition {
        let tool = try FieldReader(value, path: path)
        let type = try tool.string("type") ?? "function"
        guard type == "function" else {
            throw ChatRequestError(field: tool.name("type"), message: "unsupported tool type \"\(type)\"; expected function")
        }
        guard let functionValue = tool.fields["function"] else {
            throw ChatRequestError(field: tool.name("function"), message: "required: {name, description, parameters}")
        }
        let function = try FieldReader(functionValue, path: tool.name("function"))
        let name = try function.requiredString("name")
        guard !name.isEmpty else { throw ChatRequestError(field: function.name("name"), message: "must not be empty") }
        let parameters = function.fields["parameters"] ?? ["type": "object", "properties": [:]]
        guard case .object = parameters else {
            throw ChatRequestError(field: function.name("parameters"), message: "expected a JSON Schema object, found \(parameters.typeName)")
        }
        return ToolDefinition(name: name, description: try function.string("description") ?? "", inputSchema: parameters)
    }
}
