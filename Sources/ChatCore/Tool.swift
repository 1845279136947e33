import Synchronization

/// A tool as the model sees it: name, description and the JSON Schema of its input.
public struct ToolDefinition: Sendable, Hashable {
    public var name: String
    public var description: String
    public var inputSchema: JSONValue

    public init(name: String, description: String, inputSchema: JSONValue) {
        self.name = name
        self.description = description
        self.inputSchema = inputSchema
    }
}

/// What a tool returns to the model.
public struct ToolOutput: Sendable, Hashable {
    /// Text for the model, usually JSON.
    public var content: String
    /// Marks a failure the model can read and act on (`is_error` in the tool result).
    public var isError: Bool
    /// The content was cut to the result size limit.
    public var truncated: Bool

    public init(content: String, isError: Bool = false, truncated: Bool = false) {
        self.content = content
        self.isError = isError
        self.truncated = truncated
    }
}

/// Something the model can call.
public protocol Tool: Sendable {
    var definition: ToolDefinition { get }
    /// Runs the tool. Thrown errors become an error result for the model; cancellation must be honoured.
    func execute(_ input: JSONValue) async throws -> ToolOutput
}

/// The tools a chat may use, by name.
public struct ToolBox: Sendable {
    public let tools: [String: any Tool]
    /// Definitions in a stable order, as sent upstream.
    public let definitions: [ToolDefinition]

    /// The subsets `only` made, kept so that every chat of a key limited to some tools shares one box, and so one
    /// definitions array (which the model clients find their rendered tools by, `ToolDefinitionsJSON`).
    private let subsets = ToolSubsets()

    public init(_ tools: [any Tool]) {
        var byName: [String: any Tool] = [:]
        for tool in tools where byName[tool.definition.name] == nil { byName[tool.definition.name] = tool }
        self.tools = byName
        self.definitions = byName.values.map(\.definition).sorted { $0.name < $1.name }
    }

    public subscript(name: String) -> (any Tool)? { tools[name] }

    /// The tools named in `names` (a key's `tools`), or all of them for `nil`: only these are offered to the model
    /// and only these can run. The same `names` give the same box (up to `ToolSubsets.limit` sets are kept).
    public func only(_ names: Set<String>?) -> ToolBox {
        guard let names else { return self }
        if let kept = subsets.boxes.withLock({ $0[names] }) { return kept }
        let made = ToolBox(tools.values.filter { names.contains($0.definition.name) })
        return subsets.boxes.withLock { boxes in
            if let earlier = boxes[names] { return earlier }
            if boxes.count < ToolSubsets.limit { boxes[names] = made }
            return made
        }
    }
}

/// A tool box's subsets by the names asked for (`ToolBox.only`).
final class ToolSubsets: Sendable {
    /// How many subsets are kept: the keys' distinct tool lists, a handful in practice; past this, a subset is made
    /// for each chat.
    static let limit = 64
    let boxes = Mutex<[Set<String>: ToolBox]>([:])
}
