import Foundation

extension Double {
    /// The number as people write it: `3` for a whole number, `2.5` otherwise (weights, scores, limits in messages).
    public var compactText: String {
        self == rounded() && abs(self) < 1e15 ? String(Int64(self)) : String(self)
    }
}

extension JSONValue {
    /// The value in a few words, for error messages: a short string quoted, a number, or its kind.
    public var briefDescription: String {
        switch self {
        case .string(let text): "\"\(text.count > 40 ? String(text.prefix(40)) + "…" : text)\""
        case .number(let number): number.compactText
        case .bool(let flag): flag ? "true" : "false"
        case .null: "null"
        case .array, .object: typeName
        }
    }
}

extension JSONEncoder {
    /// Keys sorted and slashes left alone, so answers and tool results are byte-for-byte repeatable.
    public static var sortedKeys: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

extension String {
    /// The longest prefix whose UTF-8 is at most `bytes` long, cut between characters.
    public func prefixUTF8(_ bytes: Int) -> String {
        guard utf8.count > bytes else { return self }
        var length = 0
        var end = startIndex
        for index in indices {
            let next = self.index(after: index)
            length += self[index..<next].utf8.count
            guard length <= bytes else { break }
            end = next
        }
        return String(self[..<end])
    }
}
