import Foundation

/// The conventions' opt-in capture of what a model was sent and answered (`gen_ai.input.messages`,
/// `gen_ai.output.messages`), as their JSON shape: a list of `{role, parts}` with `text`, `tool_call` and
/// `tool_call_response` parts. Off unless `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`: messages may
/// hold personal data (the HR tools' answers). Each attribute is cut at `limit` bytes.
public enum ContentCapture {
    public static let limit = 16 << 10

    public static func input(_ request: ModelRequest) -> String {
        var messages: [JSONValue] = []
        if let system = request.system {
            messages.append(["role": "system", "parts": [["type": "text", "content": .string(system)]]])
        }
        for message in request.messages {
            messages.append(["role": .string(message.role.rawValue), "parts": .array(parts(message.content))])
        }
        return encoded(.array(messages))
    }

    public static func output(_ turn: ModelTurn) -> String {
        var message: [String: JSONValue] = ["role": "assistant", "parts": .array(parts(.blocks(turn.content)))]
        message["finish_reason"] = .string(turn.stopReason.rawValue)
        return encoded([.object(message)])
    }

    /// A tool call's arguments or result, bounded.
    public static func text(_ value: JSONValue) -> String {
        encoded(value)
    }

    private static func parts(_ content: ChatMessage.Content) -> [JSONValue] {
        switch content {
        case .text(let text):
            return [["type": "text", "content": .string(text)]]
        case .blocks(let blocks):
            return blocks.compactMap { block in
                switch block["type"]?.stringValue {
                case "text": ["type": "text", "content": block["text"] ?? ""]
                case "tool_use": ["type": "tool_call", "id": block["id"] ?? "", "name": block["name"] ?? "",
                                  "arguments": block["input"] ?? .object([:])]
                case "tool_result": ["type": "tool_call_response", "id": block["tool_use_id"] ?? "",
                                     "response": block["content"] ?? ""]
                default: nil
                }
            }
        }
    }

    private static func encoded(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let text = (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return text.utf8.count > limit ? text.prefixUTF8(limit) : text
    }
}
