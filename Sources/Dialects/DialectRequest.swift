import ChatCore

/// A chat as an OpenAI or Anthropic SDK sent it, in Switchboard's terms.
public struct DialectRequest: Sendable, Hashable {
    /// The conversation, its system prompt and token limit, and the client's tools (`clientTools`, when it
    /// declared any). Its `model` is left `nil`: what `model` names is the server's to resolve.
    public var chat: ChatRequest
    /// The request's `model`: `"auto"`, a route's name, or a model id.
    public var model: String
    /// Whether the answer streams (SSE in the dialect) or comes whole as JSON.
    public var stream: Bool
    /// OpenAI's `stream_options.include_usage`: a last chunk with the usage (the Anthropic dialect always has it).
    public var includeUsage: Bool

    public init(chat: ChatRequest, model: String, stream: Bool, includeUsage: Bool = false) {
        self.chat = chat
        self.model = model
        self.stream = stream
        self.includeUsage = includeUsage
    }

    /// The `model` that asks Switchboard to route the chat by its complexity.
    public static let automatic = "auto"
}

/// What every dialect encoder keeps of its stream: who answers, and what the client heard so far.
struct AnswerState: Sendable {
    /// The model that answers: the plan's, then a fallback's when a `routing` event moves the stream.
    var model: String
    /// Text written so far (an answer that is not streamed is sent whole at the end).
    var text = ""
    /// Client tool calls announced by the model, by id, in order.
    var toolCallIds: [String] = []

    /// Follows a fallback: the answer's `model` is the model that answered.
    mutating func follow(_ decision: RoutingDecision) {
        if let model = decision.model { self.model = model }
    }
}

/// A request body as JSON; a body that is not JSON is refused naming `body`.
func parseBody(_ body: some Collection<UInt8>) throws(ChatRequestError) -> JSONValue {
    do {
        return try Array(body).withUnsafeBytes { bytes throws(JSONParseError) in try JSONValue(parsing: bytes) }
    } catch {
        throw ChatRequestError(field: "body", message: "the body is not valid JSON: \(error)")
    }
}

/// Reads JSON request fields, naming the field in every refusal.
struct FieldReader {
    let fields: [String: JSONValue]
    let path: String

    init(_ value: JSONValue, path: String) throws(ChatRequestError) {
        guard case .object(let fields) = value else {
            throw ChatRequestError(field: path.isEmpty ? "body" : path, message: "expected a JSON object, found \(value.typeName)")
        }
        self.fields = fields
        self.path = path
    }

    func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func string(_ key: String) throws(ChatRequestError) -> String? {
        switch fields[key] {
        case nil, .null?: return nil
        case .string(let text)?: return text
        case let other?: throw ChatRequestError(field: name(key), message: "expected a string, found \(other.typeName)")
        }
    }

    /// The request's `model`: a non-empty string.
    func model() throws(ChatRequestError) -> String {
        let model = try requiredString("model")
        if model.isEmpty { throw ChatRequestError(field: name("model"), message: "must not be empty") }
        return model
    }

    func requiredString(_ key: String) throws(ChatRequestError) -> String {
        guard let text = try string(key) else { throw ChatRequestError(field: name(key), message: "required: a string") }
        return text
    }

    func bool(_ key: String) throws(ChatRequestError) -> Bool? {
        switch fields[key] {
        case nil, .null?: return nil
        case .bool(let flag)?: return flag
        case let other?: throw ChatRequestError(field: name(key), message: "expected true or false, found \(other.briefDescription)")
        }
    }

    /// A whole number from 1 to 1,000,000 (a token limit).
    func tokenLimit(_ key: String) throws(ChatRequestError) -> Int? {
        switch fields[key] {
        case nil, .null?: return nil
        case .number(let number)? where number.rounded() == number && number >= 1 && number <= 1_000_000: return Int(number)
        case let other?: throw ChatRequestError(field: name(key), message: "expected a whole number from 1 to 1000000, found \(other.briefDescription)")
        }
    }

    func array(_ key: String) throws(ChatRequestError) -> [JSONValue]? {
        switch fields[key] {
        case nil, .null?: return nil
        case .array(let items)?: return items
        case let other?: throw ChatRequestError(field: name(key), message: "expected an array, found \(other.typeName)")
        }
    }
}

extension ChatRequestError {
    /// The same problem, its field named as the dialect names it.
    func renamed(_ rename: (String) -> String) -> ChatRequestError {
        ChatRequestError(field: rename(field), message: message)
    }
}
