import Foundation
import HTTPTypes
import Hummingbird

/// Requires an API key on every endpoint but `/health` and `/ready` when the server has keys: `Authorization:
/// Bearer KEY`, or `x-api-key: KEY` as Anthropic SDK clients send it. Admin endpoints need an admin key. A key's
/// requests per minute are taken here, before any work, except on the chat endpoints, whose handlers take the
/// request with the stream's admission (one round trip to a shared store). Refusals are counted per key and code.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = SwitchboardRequestContext

    let keys: APIKeyStore
    let quotas: any QuotaStore
    let metrics: ServerMetrics

    static let adminPaths: Set<String> = ["/rules", "/rules/calibration", "/tools", "/metrics"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if BrowserSafetyMiddleware<Context>.probes.contains(path) || FrontendAssets.paths.contains(path) {
            return try await next(request, context)
        }
        guard let presented = Self.presentedKey(request.headers) else {
            metrics.refusal(key: nil, code: .unauthorized)
            throw APIError(.unauthorized, code: .unauthorized,
                           message: "this server needs an API key: send Authorization: Bearer KEY (or x-api-key: KEY)",
                           field: "Authorization")
        }
        guard let key = keys.keys.authenticate(presented) else {
            metrics.refusal(key: nil, code: .invalidAPIKey)
            throw APIError(.unauthorized, code: .invalidAPIKey, message: "the API key is not valid", field: "Authorization")
        }
        var context = context
        context.apiKey = key
        context.logger[metadataKey: "key"] = "\(key.id)"
        metrics.keyRequest(key.id)
        do {
            if Self.adminPaths.contains(path), !key.admin {
                throw APIError(.forbidden, code: .forbidden, message: "\(path) needs an admin key")
            }
            // The chat endpoints count their request when they admit the stream (or give advice), so a shared
            // quota store answers a chat in one round trip.
            if !Self.countsOwnRequests(request) { try await StreamGate.countRequest(key, quotas: quotas) }
            return try await next(request, context)
        } catch let error as APIError {
            metrics.refusal(key: key.id, code: error.code)
            throw error
        }
    }

    /// `POST /mcp/chat` and `POST /mcp/chat/stream`: their handlers count the request (`StreamGate`).
    static func countsOwnRequests(_ request: Request) -> Bool {
        request.method == .post && (request.uri.path == "/mcp/chat" || request.uri.path == "/mcp/chat/stream")
    }

    /// The key in `Authorization: Bearer KEY`, else in `x-api-key`.
    static func presentedKey(_ headers: HTTPFields) -> String? {
        if let authorization = headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                let key = parts[1].trimmingCharacters(in: .whitespaces)
                if !key.isEmpty { return key }
            }
        }
        if let key = headers[HTTPField.Name("x-api-key")!], !key.isEmpty { return key }
        return nil
    }
}
