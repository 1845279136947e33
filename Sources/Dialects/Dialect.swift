import ChatCore

/// The two inbound dialects: the wire formats of the OpenAI and Anthropic SDKs, spoken by the compatible
/// endpoints. Each refuses in its own error shape, so the SDKs raise their typed exceptions.
public enum Dialect: String, Sendable, Hashable, CaseIterable {
    /// OpenAI Chat Completions: `{"error":{"message","type","param","code"}}`.
    case openAI = "openai"
    /// Anthropic Messages: `{"type":"error","error":{"type","message"}}`.
    case anthropic

    /// An error body in the dialect: the HTTP status decides its `type`; `code` is Switchboard's (OpenAI's `code`
    /// field), `field` the request field at fault (OpenAI's `param`; Anthropic names it in the message).
    public func errorBody(status: Int, code: String, message: String, field: String?) -> [UInt8] {
        var json = JSONWriter(capacity: 160 + message.utf8.count)
        switch self {
        case .openAI:
            json.raw("{\"error\":{\"message\":")
            json.string(message)
            json.field("type", openAIType(status: status))
            json.field("param", orNull: field)
            json.field("code", code)
            json.raw("}}")
        case .anthropic:
            json.raw("{\"type\":\"error\",\"error\":{\"type\":")
            json.string(anthropicType(status: status))
            json.field("message", field.map { "\($0): \(message)" } ?? message)
            json.raw("}}")
        }
        return json.bytes
    }

    /// How a stream that failed before its first byte is answered: the status a client of this dialect expects
    /// for what happened upstream, and the dialect's error body.
    public func answer(for error: StreamError) -> ErrorAnswer {
        let (status, retryAfter) = Self.status(for: error.code)
        return ErrorAnswer(status: status, body: errorBody(status: status, code: error.code.rawValue, message: error.message, field: nil),
                           retryAfter: retryAfter)
    }

    /// A stream's error after its first byte: Anthropic's `event: error`; for OpenAI a last chunk holding only an
    /// `error` object (the SDK raises it), after which the stream closes without `[DONE]`.
    public func inStreamError(_ error: StreamError) -> [UInt8] {
        let (status, _) = Self.status(for: error.code)
        var bytes: [UInt8] = []
        switch self {
        case .openAI: bytes.append(contentsOf: "data: ".utf8)
        case .anthropic: bytes.append(contentsOf: "event: error\ndata: ".utf8)
        }
        bytes.append(contentsOf: errorBody(status: status, code: error.code.rawValue, message: error.message, field: nil))
        bytes.append(contentsOf: "\n\n".utf8)
        return bytes
    }

    /// A failure's bytes in an answer: the in-stream error when streamed, else the whole error body.
    func errorBytes(_ error: StreamError, streamed: Bool) -> [UInt8] {
        streamed ? inStreamError(error)
            : errorBody(status: Self.status(for: error.code).status, code: error.code.rawValue, message: error.message, field: nil)
    }

    /// The HTTP status (and `Retry-After`, in seconds) of a stream error told before the first byte: the model
    /// service's rate limit is a 429, its overload or this server's shutdown a 503, a deadline a 504, any other
    /// failure of the model service a 502.
    public static func status(for code: StreamErrorCode) -> (status: Int, retryAfter: Int?) {
        switch code {
        case .rateLimited: (429, 5)
        case .keyRevoked: (401, nil)
        case .overloaded: (503, 5)
        case .serverShutdown, .quotasUnavailable: (503, 1)
        case .connectTimeout, .firstByteTimeout, .idleTimeout, .overallTimeout: (504, nil)
        case .upstreamError, .upstreamRejected, .upstreamAuth, .upstreamUnreachable, .upstreamStreamEnded, .upstreamProtocolError: (502, nil)
        case .internalError, .resumeBufferFull: (500, nil)
        }
    }

    private func openAIType(status: Int) -> String {
        switch status {
        case 401: "authentication_error"
        case 403: "permission_error"
        case 404: "not_found_error"
        case 429: "rate_limit_error"
        case 400..<500: "invalid_request_error"
        default: "server_error"
        }
    }

    private func anthropicType(status: Int) -> String {
        switch status {
        case 401: "authentication_error"
        case 403: "permission_error"
        case 404: "not_found_error"
        case 413: "request_too_large"
        case 429: "rate_limit_error"
        case 503, 529: "overloaded_error"
        case 400..<500: "invalid_request_error"
        default: "api_error"
        }
    }
}

/// Switchboard's own tool activity (`tools_executing`, a tool's end) as an SSE comment: skipped by every SSE client,
/// so a strict one never meets a field it does not know; nothing for other events or an answer that is not streamed.
func toolActivity(_ event: StreamEvent, streamed: Bool) -> [UInt8] {
    guard streamed else { return [] }
    switch event {
    case .toolsExecuting(let tools): return comment("tools_executing \(tools.joined(separator: " "))")
    case .toolProgress(let progress) where progress.status != .executing:
        return comment("tool \(progress.tool) \(progress.status.rawValue) in \(progress.executionTimeMs ?? 0) ms")
    default: return []
    }
}

/// An SSE comment line.
func comment(_ text: String) -> [UInt8] {
    Array(": \(text.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " "))\n\n".utf8)
}
