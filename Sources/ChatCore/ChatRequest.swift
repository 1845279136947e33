import Foundation

/// A chat as frontends post it to `/mcp/chat/analyze` and `/mcp/chat/stream`.
public struct ChatRequest: Sendable, Hashable {
    public var messages: [ChatMessage]
    public var system: String?
    public var model: String?
    public var maxTokens: Int?
    /// Whether `text_chunk` events carry `accumulated`, everything so far. On by default, as the first frontends
    /// expect; off, a long answer's bytes grow with its length instead of with its square.
    public var accumulated: Bool
    /// Smart routing only: the route to take instead of the analysed one (the analysis is still reported).
    public var route: String?
    /// Whether the stream survives a dropped connection: the session keeps running, its events kept, and
    /// `GET /mcp/chat/stream/{sessionId}` with `Last-Event-ID` picks it up again.
    public var resumable: Bool
    /// The client's own tools (the compatible endpoints' `tools`): the model may call them, and its calls end the
    /// chat for the client to run them (Switchboard runs none of them); `nil`: Switchboard's tools, run in the loop.
    public var clientTools: [ToolDefinition]?
    /// Whether `tool_progress` events carry the tool's `input` (executing) and `result` (completed), cut at
    /// `ToolProgress.resultLimit`. Off by default: no tool event carries either.
    public var toolDetails = false
    /// Whether `complete` carries `messages`: the turns this chat added (assistant turns with their text and tool
    /// calls, user turns with the tool results, the final answer), in the request's format, for the client's history.
    public var returnMessages = false
    /// `"thinking": {"budgetTokens": N}`: the model thinks first (Anthropic's extended thinking), streamed as
    /// `thinking_chunk` events; `nil`: no thinking.
    public var thinkingBudget: Int?

    public init(messages: [ChatMessage], system: String? = nil, model: String? = nil, maxTokens: Int? = nil,
                accumulated: Bool = true, route: String? = nil, resumable: Bool = false, clientTools: [ToolDefinition]? = nil) {
        self.clientTools = clientTools
        self.messages = messages
        self.system = system
        self.model = model
        self.maxTokens = maxTokens
        self.accumulated = accumulated
        self.route = route
        self.resumable = resumable
    }
}

/// One turn of the conversation.
public struct ChatMessage: Sendable, Hashable {
    public enum Role: String, Sendable, Hashable, CaseIterable {
        case user
        case assistant
    }

    public enum Content: Sendable, Hashable {
        case text(String)
        /// Content blocks in the Anthropic Messages shape (`{"type":"text","text":…}`, `tool_use`, …), kept as sent.
        case blocks([JSONValue])
    }

    public var role: Role
    public var content: Content

    public init(role: Role, content: Content) {
        self.role = role
        self.content = content
    }

    /// The message in the request's format: `{"role", "content"}`, content a string or blocks.
    public var json: JSONValue {
        let content: JSONValue = switch content {
        case .text(let text): .string(text)
        case .blocks(let blocks): .array(blocks)
        }
        return .object(["role": .string(role.rawValue), "content": content])
    }

    /// The message's text: its string content, or its text blocks joined with newlines.
    public var text: String {
        switch content {
        case .text(let text): return text
        case .blocks(let blocks):
            return blocks.compactMap { $0["type"]?.stringValue == "text" ? $0["text"]?.stringValue : nil }
                .joined(separator: "\n")
        }
    }
}

/// Why a request body was refused, naming the field (`messages[2].role`) so a developer can fix it.
public struct ChatRequestError: Error, Sendable, Hashable, CustomStringConvertible {
    public let field: String
    public let message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

extension ChatRequest {
    /// Decodes and validates a request body.
    public init(json body: some DataProtocol) throws(ChatRequestError) {
        let value: JSONValue
        do {
            value = try Array(body).withUnsafeBytes { bytes throws(JSONParseError) in try JSONValue(parsing: bytes) }
        } catch {
            throw ChatRequestError(field: "body", message: "the body is not valid JSON: \(error)")
        }
        try self.init(validating: value)
    }

    /// Validates an already-decoded body.
    public init(validating value: JSONValue) throws(ChatRequestError) {
        guard case .object(let fields) = value else {
            throw ChatRequestError(field: "body", message: "expected a JSON object, found \(value.typeName)")
        }
        guard let messagesValue = fields["messages"] else {
            throw ChatRequestError(field: "messages", message: "required: an array of {role, content} messages")
        }
        guard case .array(let items) = messagesValue else {
            throw ChatRequestError(field: "messages", message: "expected an array, found \(messagesValue.typeName)")
        }
        guard !items.isEmpty else {
            throw ChatRequestError(field: "messages", message: "must contain at least one message")
        }
        var messages: [ChatMessage] = []
        messages.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            messages.append(try Self.message(item, field: "messages[\(index)]"))
        }
        self.messages = messages
        self.system = try Self.optionalString(fields["system"], field: "system")
        self.model = try Self.optionalString(fields["model"], field: "model")
        if let model, model.isEmpty { throw ChatRequestError(field: "model", message: "must not be empty") }
        switch fields["maxTokens"] {
        case nil, .null?:
            self.maxTokens = nil
        case .number(let number)? where number.rounded() == number && number >= 1 && number <= 1_000_000:
            self.maxTokens = Int(number)
        case let other?:
            throw ChatRequestError(field: "maxTokens", message: "expected a whole number from 1 to 1000000, found \(other.briefDescription)")
        }
        self.route = try Self.optionalString(fields["route"], field: "route")
        if let route, route.isEmpty { throw ChatRequestError(field: "route", message: "must not be empty") }
        switch fields["accumulated"] {
        case nil, .null?: self.accumulated = true
        case .bool(let flag)?: self.accumulated = flag
        case let other?: throw ChatRequestError(field: "accumulated", message: "expected true or false, found \(other.briefDescription)")
        }
        self.resumable = try Self.flag(fields["resumable"], field: "resumable")
        self.toolDetails = try Self.flag(fields["toolDetails"], field: "toolDetails")
        self.returnMessages = try Self.flag(fields["returnMessages"], field: "returnMessages")
        switch fields["thinking"] {
        case nil, .null?: self.thinkingBudget = nil
        case .object(let thinking)?:
            for name in thinking.keys where name != "budgetTokens" {
                throw ChatRequestError(field: "thinking.\(name)", message: "unknown field; thinking takes budgetTokens")
            }
            switch thinking["budgetTokens"] {
            case .number(let number)? where number.rounded() == number && number >= 1024 && number <= 1_000_000:
                self.thinkingBudget = Int(number)
            case nil:
                throw ChatRequestError(field: "thinking.budgetTokens", message: "required: a whole number of tokens from 1024 to 1000000")
            case let other?:
                throw ChatRequestError(field: "thinking.budgetTokens",
                                       message: "expected a whole number from 1024 to 1000000 (the API's minimum is 1024), found \(other.briefDescription)")
            }
        case let other?:
            throw ChatRequestError(field: "thinking", message: "expected an object {\"budgetTokens\": N}, found \(other.typeName)")
        }
    }

    /// An optional true or false, false when absent.
    private static func flag(_ value: JSONValue?, field: String) throws(ChatRequestError) -> Bool {
        switch value {
        case nil, .null?: return false
        case .bool(let flag)?: return flag
        case let other?: throw ChatRequestError(field: field, message: "expected true or false, found \(other.briefDescription)")
        }
    }

    private static func message(_ value: JSONValue, field: String) throws(ChatRequestError) -> ChatMessage {
        guard case .object(let fields) = value else {
            throw ChatRequestError(field: field, message: "expected an object with role and content, found \(value.typeName)")
        }
        guard let roleValue = fields["role"] else {
            throw ChatRequestError(field: "\(field).role", message: "required: \"user\" or \"assistant\"")
        }
        guard let roleName = roleValue.stringValue, let role = ChatMessage.Role(rawValue: roleName) else {
            throw ChatRequestError(field: "\(field).role",
                                   message: "unknown role \(roleValue.briefDescription); expected \"user\" or \"assistant\""
                                       + (roleValue.stringValue == "system" ? " (put the system prompt in the top-level \"system\" field)" : ""))
        }
        switch fields["content"] {
        case nil:
            throw ChatRequestError(field: "\(field).content", message: "required: a string or an array of content blocks")
        case .string(let text)?:
            return ChatMessage(role: role, content: .text(text))
        case .array(let blocks)?:
            var checked: [JSONValue] = []
            checked.reserveCapacity(blocks.count)
            for (index, block) in blocks.enumerated() {
                checked.append(try Self.block(block, field: "\(field).content[\(index)]"))
            }
            return ChatMessage(role: role, content: .blocks(checked))
        case let other?:
            throw ChatRequestError(field: "\(field).content", message: "expected a string or an array of content blocks, found \(other.typeName)")
        }
    }

    /// The content block types a message may hold. Anything else (a `document`, an `image`, a block by URL) is a
    /// 400 naming the block's `type`: Switchboard never fetches what a client points at.
    public static let supportedBlockTypes = ["text", "tool_use", "tool_result"]

    /// A content block rebuilt from the fields Switchboard supports, so nothing else (a client's `cache_control`:
    /// the server decides caching) reaches a provider.
    private static func block(_ block: JSONValue, field: String) throws(ChatRequestError) -> JSONValue {
        guard case .object = block else {
            throw ChatRequestError(field: field, message: "expected a content block object, found \(block.typeName)")
        }
        guard let type = block["type"]?.stringValue else {
            throw ChatRequestError(field: "\(field).type", message: "required: the block's type, one of "
                                   + supportedBlockTypes.joined(separator: ", "))
        }
        func text(_ name: String) throws(ChatRequestError) -> String {
            guard let value = block[name] else { throw ChatRequestError(field: "\(field).\(name)", message: "required: a string") }
            guard let text = value.stringValue else {
                throw ChatRequestError(field: "\(field).\(name)", message: "expected a string, found \(value.typeName)")
            }
            return text
        }
        switch type {
        case "text":
            return .object(["type": "text", "text": .string(try text("text"))])
        case "tool_use":
            let input = block["input"] ?? .object([:])
            guard case .object = input else {
                throw ChatRequestError(field: "\(field).input", message: "expected an object, found \(input.typeName)")
            }
            return .object(["type": "tool_use", "id": .string(try text("id")), "name": .string(try text("name")), "input": input])
        case "tool_result":
            var result: [String: JSONValue] = ["type": "tool_result", "tool_use_id": .string(try text("tool_use_id"))]
            switch block["content"] {
            case nil, .null?: break
            case .string(let content)?: result["content"] = .string(content)
            case .array(let parts)?:
                var texts: [JSONValue] = []
                for (index, part) in parts.enumerated() {
                    let partField = "\(field).content[\(index)]"
                    guard part["type"]?.stringValue == "text", let content = part["text"]?.stringValue else {
                        throw ChatRequestError(field: "\(partField).type",
                                               message: "a tool result's content blocks must be text blocks with a string text")
                    }
                    texts.append(.object(["type": "text", "text": .string(content)]))
                }
                result["content"] = .array(texts)
            case let other?:
                throw ChatRequestError(field: "\(field).content", message: "expected a string or text blocks, found \(other.typeName)")
            }
            switch block["is_error"] {
            case nil, .null?: break
            case .bool(let flag)?: result["is_error"] = .bool(flag)
            case let other?: throw ChatRequestError(field: "\(field).is_error", message: "expected true or false, found \(other.typeName)")
            }
            return .object(result)
        default:
            throw ChatRequestError(field: "\(field).type", message: "unsupported content block type \"\(type)\"; supported: "
                                   + supportedBlockTypes.joined(separator: ", "))
        }
    }

    private static func optionalString(_ value: JSONValue?, field: String) throws(ChatRequestError) -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?: return text
        case let other?: throw ChatRequestError(field: field, message: "expected a string, found \(other.typeName)")
        }
    }

}
