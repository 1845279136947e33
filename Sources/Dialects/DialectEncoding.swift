import ChatCore

/// What the two dialects' encoders share, so each writes only its own shapes: the session's and iterations' starts
/// say nothing, a fallback's `routing` event changes the answering model, Switchboard's own tools show as SSE
/// comments, a failure is the dialect's error, and the answer is SSE when streamed, else JSON.
public protocol DialectEncoding: EventEncoding {
    static var dialect: Dialect { get }
    /// Whether the answer is streamed (SSE) or one JSON body at the end.
    var streamed: Bool { get }
    /// A fallback took over: the answer names `decision.model` from now on.
    mutating func follow(_ decision: RoutingDecision)
    /// The bytes of the events the dialect writes in its own shape: `textChunk`, `toolDetected` and `complete`.
    mutating func content(for event: StreamEvent) -> [UInt8]
}

extension DialectEncoding {
    public var contentType: String { streamed ? "text/event-stream; charset=utf-8" : "application/json" }

    public func answer(for error: StreamError) -> ErrorAnswer? {
        Self.dialect.answer(for: error)
    }

    public mutating func bytes(for event: StreamEvent) -> [UInt8] {
        switch event {
        case .sessionStart, .iterationStart, .thinkingChunk:
            // The SDKs' dialects have no thinking in a chat completion; a dialect request never asks for it.
            return []
        case .routing(let decision):
            follow(decision)
            return []
        case .toolsExecuting, .toolProgress:
            return toolActivity(event, streamed: streamed)
        case .error(let error):
            return Self.dialect.errorBytes(error, streamed: streamed)
        case .textChunk, .toolDetected, .complete:
            return content(for: event)
        }
    }
}
