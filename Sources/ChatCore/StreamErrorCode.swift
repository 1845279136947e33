/// Why a stream failed, as the `code` of its `error` event. Raw values are the wire's; Docs/STREAMING.md
/// lists every case (a test keeps the two equal).
public enum StreamErrorCode: String, Sendable, Hashable, CaseIterable {
    /// The model service is overloaded (HTTP 529 or a mid-stream `overloaded_error`).
    case overloaded
    /// The model service's rate limit (429).
    case rateLimited = "rate_limited"
    /// The model service failed (5xx, `api_error`).
    case upstreamError = "upstream_error"
    /// The model service refused the request (400/404/413).
    case upstreamRejected = "upstream_rejected"
    /// The API key was refused (401/403).
    case upstreamAuth = "upstream_auth"
    /// Could not connect.
    case upstreamUnreachable = "upstream_unreachable"
    case connectTimeout = "connect_timeout"
    case firstByteTimeout = "first_byte_timeout"
    case idleTimeout = "idle_timeout"
    case overallTimeout = "overall_timeout"
    /// The model's stream ended before its message was complete.
    case upstreamStreamEnded = "upstream_stream_ended"
    /// The model service sent something unreadable.
    case upstreamProtocolError = "upstream_protocol_error"
    /// A Switchboard fault.
    case internalError = "internal_error"
    /// The server is shutting down and the stream did not finish within the grace period; send it again (a
    /// load balancer will pick another instance).
    case serverShutdown = "server_shutdown"
    /// A resumable stream kept more events than its buffer holds (per session or server-wide) while waiting
    /// for its client; it was stopped.
    case resumeBufferFull = "resume_buffer_full"
    /// The quota store (PostgreSQL, with several instances) did not answer when the chat's budget was checked before
    /// a model call; the chat was stopped rather than spend unchecked.
    case quotasUnavailable = "quotas_unavailable"
    /// The API key that opened the stream was revoked (or removed, or given a new secret) while it ran.
    case keyRevoked = "key_revoked"
}

/// How a stream ended, for metrics and logs.
public enum StreamOutcome: String, Sendable, Hashable, CaseIterable {
    /// The last event was `complete`.
    case complete
    /// The last event was `error`.
    case error
    /// The client went away (or the connection failed) before the last event.
    case clientGone = "client_gone"
}
