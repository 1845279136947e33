/// One Server-Sent Event as received.
public struct ServerSentEvent: Sendable, Hashable {
    /// The `event:` field; `nil` when the event had none (the spec's "message").
    public var event: String?
    /// The `data:` lines joined with newlines.
    public var data: String
    public var id: String?

    public init(event: String? = nil, data: String, id: String? = nil) {
        self.event = event
        self.data = data
        self.id = id
    }
}

/// A Server-Sent Events parser, as the WHATWG spec describes it, driven by bytes in chunks of any size.
///
/// Lines end in LF, CR or CRLF (a CRLF split across chunks counts once); text is decoded per complete line,
/// so a multi-byte character split across chunks survives; comments go to `comment` (a keepalive is one),
/// unknown fields are skipped; several
/// `data:` lines join with newlines; an event is dispatched at a blank line, and one cut off by the end of
/// input is not.
public struct SSEDecoder: Sendable {
    /// A line longer than this is an error, so a broken peer cannot grow the buffer without bound.
    public static let maxLineBytes = 4 << 20
    /// An event whose `data:` lines add up to more than this is an error too.
    public static let maxEventBytes = 4 << 20

    /// A line or an event over its limit.
    public struct LineTooLong: Error {}

    private var line: [UInt8] = []
    private var lastWasCR = false
    private var eventName: String?
    private var data: [UInt8] = []
    private var hasData = false
    private var id: String?

    public init() {}

    /// Feeds bytes, calling `dispatch` for each complete event and `comment` with each comment line's text
    /// (after the colon and one space: `keepalive` for `: keepalive`).
    public mutating func feed(_ bytes: some Sequence<UInt8>, comment: (String) throws -> Void = { _ in },
                              dispatch: (ServerSentEvent) throws -> Void) throws {
        let array = Array(bytes)
        try array.withUnsafeBytes { try feed($0, comment: comment, dispatch: dispatch) }
    }

    /// Feeds bytes from a buffer (the fast path: no per-byte generic calls), calling `dispatch` per event and
    /// `comment` per comment line.
    public mutating func feed(_ buffer: UnsafeRawBufferPointer, comment: (String) throws -> Void = { _ in },
                              dispatch: (ServerSentEvent) throws -> Void) throws {
        let count = buffer.count
        var index = 0
        while index < count {
            if lastWasCR {
                lastWasCR = false
                if buffer[index] == 0x0A {
                    index += 1
                    continue
                }
            }
            var end = index
            while end < count, buffer[end] != 0x0A, buffer[end] != 0x0D { end += 1 }
            if end > index {
                line.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[index..<end]))
                if line.count > Self.maxLineBytes { throw LineTooLong() }
            }
            guard end < count else { return }
            lastWasCR = buffer[end] == 0x0D
            try endLine(comment, dispatch)
            index = end + 1
        }
    }

    private mutating func endLine(_ comment: (String) throws -> Void, _ dispatch: (ServerSentEvent) throws -> Void) throws {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            guard hasData || eventName != nil else { return }
            let event = ServerSentEvent(event: eventName, data: String(decoding: data, as: UTF8.self), id: id)
            eventName = nil
            data.removeAll(keepingCapacity: true)
            hasData = false
            try dispatch(event)
            return
        }
        if line[0] == UInt8(ascii: ":") {
            let start = line.count > 1 && line[1] == UInt8(ascii: " ") ? 2 : 1
            try comment(String(decoding: line[start...], as: UTF8.self))
            return
        }
        let colon = line.firstIndex(of: UInt8(ascii: ":"))
        let nameEnd = colon ?? line.count
        var valueStart = colon.map { $0 + 1 } ?? line.count
        if valueStart < line.count, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let value = line[valueStart...]
        switch line[0..<nameEnd] {
        case Self.dataField:
            if hasData { data.append(0x0A) }
            guard data.count + value.count <= Self.maxEventBytes else { throw LineTooLong() }
            data.append(contentsOf: value)
            hasData = true
        case Self.eventField:
            eventName = String(decoding: value, as: UTF8.self)
        case Self.idField:
            if !value.contains(0) { id = String(decoding: value, as: UTF8.self) }
        default:
            break // `retry` and unknown fields are not used
        }
    }

    private static let dataField: ArraySlice<UInt8> = ArraySlice("data".utf8)
    private static let eventField: ArraySlice<UInt8> = ArraySlice("event".utf8)
    private static let idField: ArraySlice<UInt8> = ArraySlice("id".utf8)
}
