/// Adds `accumulated` (everything so far) to `text_chunk` events that `SSEEncoder(accumulated: false)` encoded,
/// so a stream can keep its events without it (bytes that grow with the answer, not its square) and still give a
/// client that asked for it exactly what `SSEEncoder(accumulated: true)` would have sent.
///
/// One per reader. The chunk is the last field of a `text_chunk` event and escaped text concatenates, so the
/// escaped chunks joined are the escaped `accumulated`.
public struct SSEAccumulator: Sendable {
    private var escaped: [UInt8] = []

    private static let typePrefix = Array("data: {\"type\":\"text_chunk\"".utf8)
    private static let chunkField = Array(",\"chunk\":\"".utf8)
    private static let ending = Array("\"}\n\n".utf8)
    private static let accumulatedField = Array("\",\"accumulated\":\"".utf8)

    public init() {}

    /// Takes in an event as kept; a text chunk's text is added to the total.
    public mutating func add(_ event: some Collection<UInt8>) {
        _ = chunk(in: Array(event))
    }

    /// The event as the client reads it: a text chunk with `accumulated`, any other event as it was.
    public mutating func rewrite(_ event: [UInt8]) -> [UInt8] {
        guard let chunkEnd = chunk(in: event) else { return event }
        var out = [UInt8]()
        out.reserveCapacity(event.count + escaped.count + Self.accumulatedField.count)
        out.append(contentsOf: event[..<chunkEnd])
        out.append(contentsOf: Self.accumulatedField)
        out.append(contentsOf: escaped)
        out.append(contentsOf: Self.ending)
        return out
    }

    /// For a text chunk: adds its escaped text to the total, and gives where its chunk string ends (before the
    /// closing quote); `nil` for any other event.
    private mutating func chunk(in event: [UInt8]) -> Int? {
        guard let start = Self.find(Self.typePrefix, in: event, from: 0), event.count >= Self.ending.count,
              event.suffix(Self.ending.count).elementsEqual(Self.ending),
              let field = Self.find(Self.chunkField, in: event, from: start + Self.typePrefix.count) else { return nil }
        let textStart = field + Self.chunkField.count
        let textEnd = event.count - Self.ending.count
        guard textStart <= textEnd else { return nil }
        escaped.append(contentsOf: event[textStart..<textEnd])
        return textEnd
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard haystack.count >= needle.count, from <= haystack.count - needle.count else { return nil }
        for index in from...(haystack.count - needle.count) where haystack[index] == needle[0] {
            if haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
        }
        return nil
    }
}
