import ChatCore
import Foundation
import Hummingbird
import NIOCore

/// An error answered as JSON: `{"error":{"code":…,"message":…,"field":…}}`.
public struct APIError: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    /// A stable machine-readable code (`invalid_request`, `body_too_large`, …).
    public let code: String
    public let message: String
    /// The request field at fault, as a path (`messages[0].role`), when there is one.
    public let field: String?

    public init(_ status: HTTPResponse.Status, code: String, message: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
    }

    public init(_ error: ChatRequestError) {
        self.init(.badRequest, code: "invalid_request", message: error.message, field: error.field)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        try Response.json(ErrorBody(error: .init(code: code, message: message, field: field)), status: status)
    }
}

private struct ErrorBody: Encodable {
    struct Detail: Encodable {
        let code: String
        let message: String
        let field: String?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(code, forKey: .code)
            try container.encode(message, forKey: .message)
            try container.encode(field, forKey: .field)
        }

        enum CodingKeys: CodingKey { case code, message, field }
    }

    let error: Detail
}

extension Response {
    /// A JSON response from an encodable value.
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, encoder: JSONEncoder = .api) throws -> Response {
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
            throw APIError(.contentTooLarge, code: "body_too_large",
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

extension JSONEncoder {
    /// The encoder for every JSON answer: keys sorted, so answers are byte-for-byte repeatable.
    public static var api: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
