import ChatCore
import Foundation
import MCP

extension JSONValue {
    /// The same value in the MCP SDK's model.
    var mcpValue: MCP.Value {
        switch self {
        case .null: .null
        case .bool(let flag): .bool(flag)
        case .number(let number):
            number.rounded() == number && abs(number) < 9e15 ? MCP.Value.int(Int(number)) : MCP.Value.double(number)
        case .string(let text): .string(text)
        case .array(let items): .array(items.map(\.mcpValue))
        case .object(let fields): .object(fields.mapValues(\.mcpValue))
        }
    }

    init(_ value: MCP.Value) {
        switch value {
        case .null: self = .null
        case .bool(let flag): self = .bool(flag)
        case .int(let number): self = .number(Double(number))
        case .double(let number): self = .number(number)
        case .string(let text): self = .string(text)
        case .data(_, let data): self = .string(data.base64EncodedString())
        case .array(let items): self = .array(items.map(JSONValue.init))
        case .object(let fields): self = .object(fields.mapValues(JSONValue.init))
        }
    }
}

extension ToolOutput {
    /// A tool result from MCP content: text parts joined; other kinds described.
    init(mcpContent content: [MCP.Tool.Content], isError: Bool?) {
        let parts = content.map { item -> String in
            switch item {
            case .text(let text, _, _): return text
            case .image(_, let mimeType, _, _): return "[image \(mimeType)]"
            case .audio(_, let mimeType, _, _): return "[audio \(mimeType)]"
            case .resource(let resource, _, _): return "[resource \(resource.uri)]"
            case .resourceLink(let uri, let name, _, _, _, _): return "[\(name): \(uri)]"
            }
        }
        self.init(content: parts.joined(separator: "\n"), isError: isError ?? false)
    }
}
