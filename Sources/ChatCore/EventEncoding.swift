/// Turns one stream's events into the bytes its client reads: Switchboard's own SSE (`SSEEncoder`), or the
/// OpenAI or Anthropic dialect of the compatible endpoints. One encoder per stream, used by one writer at a time.
public protocol EventEncoding: Sendable {
    /// The bytes `event` becomes: whole SSE messages (or, for an answer that is not streamed, the whole body at
    /// the end); empty when the client's dialect has nothing to say of it.
    mutating func bytes(for event: StreamEvent) -> [UInt8]

    /// How a stream that fails before its first byte is answered instead: a status and a body in the client's
    /// dialect. `nil`: the error goes in the stream like any event (Switchboard's own SSE always does).
    func answer(for error: StreamError) -> ErrorAnswer?

    /// The `Content-Type` of the answer.
    var contentType: String { get }
}

extension EventEncoding {
    public func answer(for error: StreamError) -> ErrorAnswer? { nil }
}

/// A whole error answer: its HTTP status, its JSON body, and when to try again.
public struct ErrorAnswer: Sendable, Hashable {
    public var status: Int
    public var body: [UInt8]
    /// `Retry-After`, in whole seconds.
    public var retryAfter: Int?

    public init(status: Int, body: [UInt8], retryAfter: Int? = nil) {
        self.status = status
        self.body = body
        self.retryAfter = retryAfter
    }
}

extension SSEEncoder: EventEncoding {
    public mutating func bytes(for event: StreamEvent) -> [UInt8] {
        encode(event)
    }

    public var contentType: String { "text/event-stream; charset=utf-8" }
}
