import ChatCore
import Synchronization

/// A tool set's definitions as one provider writes them in a request body (`"tools":[…]`), rendered once and kept:
/// every model call of every chat sends the same few kilobytes of schemas, which were serialized again for each.
///
/// Kept for the last few tool sets (the server's, and the subsets keys may be limited to); a set is found again by
/// equality, which costs nothing when the definitions are the same array the tool box handed out (Swift compares
/// the storage first) and stays exact when they are not, so a changed schema is never sent stale.
final class ToolDefinitionsJSON: Sendable {
    private struct Entry {
        let tools: [ToolDefinition]
        let bytes: [UInt8]
    }

    private let render: @Sendable ([ToolDefinition]) -> JSONValue
    private let entries = Mutex<[Entry]>([])
    /// How many tool sets are kept (the least recently rendered goes first).
    static let limit = 8

    /// A cache of `render`'s JSON (the provider's `tools` array) for each tool set.
    init(_ render: @escaping @Sendable ([ToolDefinition]) -> JSONValue) {
        self.render = render
    }

    /// The `tools` array's JSON for `tools`.
    func bytes(for tools: [ToolDefinition]) -> [UInt8] {
        if let kept = entries.withLock({ $0.first { $0.tools == tools }?.bytes }) { return kept }
        let bytes = render(tools).jsonBytes
        entries.withLock { entries in
            guard !entries.contains(where: { $0.tools == tools }) else { return }
            if entries.count >= Self.limit { entries.removeFirst() }
            entries.append(Entry(tools: tools, bytes: bytes))
        }
        return bytes
    }

    /// `fields` as a JSON object with `"tools"` added as the cached array for `tools` (no key when there are none).
    func body(_ fields: [String: JSONValue], tools: [ToolDefinition]) -> [UInt8] {
        var body = JSONValue.object(fields).jsonBytes
        guard !tools.isEmpty, body.last == UInt8(ascii: "}") else { return body }
        body.removeLast()
        if body.count > 1 { body.append(UInt8(ascii: ",")) }
        body.append(contentsOf: #""tools":"#.utf8)
        body.append(contentsOf: bytes(for: tools))
        body.append(UInt8(ascii: "}"))
        return body
    }
}
