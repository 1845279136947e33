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
}

/// An error answered as JSON: `{"error":{"code":…,"message":…,"field":…}}`.
public struct APIError: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let code: APIErrorCode
    public let message: String
    /// The request field at fault, as a path (`messages[0].role`), when there is one.
    public let field: String?

    public init(_ status: HTTPResponse.Status, code: APIErrorCode, message: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
    }

    public init(_ error: ChatRequestError) {
        self.init(.badRequest, code: .invalidRequest, message: error.message, field: error.field)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        try Response.json(ErrorBody(error: .init(code: code.rawValue, message: message, field: field)), status: status)
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
