import ChatCore
import Foundation
import Hummingbird
import NIOCore

/// The `code` of an error answer. Raw values are the wire's; Docs/API.md lists every case (a test keeps the
/// two equal).
public enum APIErrorCode: String, Sendable, Hashable, CaseIterable {
    /// The body is not JSON, or a field is missing or wrong.
    case invalidRequest = "invalid_request"
    /// The body is over the limit.
    case bodyTooLarge = "body_too_large"
    /// A stream was asked of a server without a model to stream from.
    case notConfigured = "not_configured"
    /// The request named a model the server (or the key) does not allow.
    case modelNotAllowed = "model_not_allowed"
    /// 404: the compatible endpoints' `model` is not `auto`, a route or a model the server knows.
    case modelNotFound = "model_not_found"
    /// No API key was sent, and the server needs one.
    case unauthorized
    /// The API key sent is not one the server knows.
    case invalidAPIKey = "invalid_api_key"
    /// The key may not do this (an admin endpoint, a route it is not allowed).
    case forbidden
    /// The key has as many streams open as it may.
    case tooManyStreams = "too_many_streams"
    /// The key's requests per minute are spent.
    case rateLimited = "rate_limited"
    /// The key's output tokens for the day are spent.
    case budgetExhausted = "budget_exhausted"
    /// The server has as many streams open as it may.
    case overloaded
    /// The shared quota store (PostgreSQL) did not answer, so no stream may open (quotas fail closed).
    case quotasUnavailable = "quotas_unavailable"
    /// A POST body that is not `application/json`.
    case unsupportedMediaType = "unsupported_media_type"
    /// A `Host` header the server does not answer to (DNS rebinding).
    case hostNotAllowed = "host_not_allowed"
    /// An `Origin` that CORS does not allow.
    case originNotAllowed = "origin_not_allowed"
    /// 404: no resumable session by that id for this key (never opened, someone else's, or expired).
    case sessionNotFound = "session_not_found"
    /// 405: the path exists, but not with this method (`Allow` lists those it answers).
    case methodNotAllowed = "method_not_allowed"
}

/// An error answered as JSON: `{"error":{"code":…,"message":…,"field":…}}`.
public struct APIError: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let code: APIErrorCode
    public let message: String
    /// The request field at fault, as a path (`messages[0].role`), when there is one.
    public let field: String?
    /// When to try again, for refusals that pass (`Retry-After`, whole seconds, at least 1).
    public let retryAfter: Duration?

    public init(_ status: HTTPResponse.Status, code: APIErrorCode, message: String, field: String? = nil,
                retryAfter: Duration? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retryAfter = retryAfter
    }

    public init(_ error: ChatRequestError) {
        self.init(.badRequest, code: .invalidRequest, message: error.message, field: error.field)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try Response.json(ErrorBody(error: .init(code: code.rawValue, message: message, field: field)), status: status)
        if let retryAfter { response.headers[.retryAfter] = String(Self.wholeSeconds(retryAfter)) }
        return response
    }

    /// A duration as `Retry-After` says it: whole seconds, rounded up, at least 1.
    static func wholeSeconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) + (attoseconds > 0 ? 1 : 0))
    }

    /// The shared quota store (PostgreSQL) did not answer in time: quotas fail closed.
    static var quotasUnavailable: APIError {
        APIError(.serviceUnavailable, code: .quotasUnavailable, message: "the quota store cannot be reached; try again shortly",
                 retryAfter: .seconds(1))
    }

    static func rateLimited(_ perMinute: Int, retryAfter wait: Duration) -> APIError {
        APIError(.tooManyRequests, code: .rateLimited, message: "this key's \(perMinute) requests per minute are used up",
                 retryAfter: wait)
    }

    /// The stream endpoints without an API key (everything else still works).
    static var streamingNotConfigured: APIError {
        APIError(.serviceUnavailable, code: .notConfigured,
                 message: "Streaming needs an Anthropic API key: set the ANTHROPIC_API_KEY environment variable and restart.")
    }
}

private struct ErrorBody: Encodable {
    struct Detail: Encodable {
        let code: String
        let message: String
        @ExplicitNull var field: String?
    }

    let error: Detail
}

extension Response {
    /// A JSON response from an encodable value.
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, encoder: JSONEncoder = .sortedKeys) throws -> Response {
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension Request {
    /// The whole body, up to `limit` bytes; a larger one is a 413 naming the limit.
    mutating func collectChatBody(upTo limit: Int) async throws -> ByteBuffer {
        do {
            return try await collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: .bodyTooLarge,
                           message: "the body is larger than the limit of \(limit) bytes", field: "body")
        }
    }

    /// Reads and validates a chat body, turning every problem into a 4xx naming the field.
    mutating func decodeChatRequest(limit: Int) async throws -> ChatRequest {
        let body = try await collectChatBody(upTo: limit)
        do {
            return try ChatRequest(json: body.readableBytesView)
        } catch {
            throw APIError(error)
        }
    }
}
