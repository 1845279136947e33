import Foundation
import HTTPTypes
import Hummingbird

/// Who may call a route. A route's access is the group it was registered in (`buildRouter`'s public, client and
/// operator groups), so it is decided by the route that matched, never by how the path was spelled.
enum RouteAccess: String, Sendable {
    /// Any key.
    case client
    /// An admin key (`admin: true`, or a key of `SWITCHBOARD_API_KEYS`).
    case admin
}

/// Requires an API key on the routes of its group when the server has keys: `Authorization: Bearer KEY`, or
/// `x-api-key: KEY` as Anthropic SDK clients send it. On an operator group the key must be an admin's. A key's
/// requests per minute are taken here, before the body is read or anything analysed, so refused work costs
/// nothing. Refusals are counted per key and code.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = SwitchboardRequestContext

    let access: RouteAccess
    let keys: APIKeyStore
    let quotas: any QuotaStore
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let presented = Self.presentedKey(request.headers) else {
            metrics.refusal(key: nil, code: .unauthorized)
            throw APIError(.unauthorized, code: .unauthorized,
                           message: "this server needs an API key: send Authorization: Bearer KEY (or x-api-key: KEY)",
                           field: "Authorization")
        }
        guard let key = keys.authenticate(presented) else {
            metrics.refusal(key: nil, code: .invalidAPIKey)
            throw APIError(.unauthorized, code: .invalidAPIKey, message: "the API key is not valid", field: "Authorization")
        }
        var context = context
        context.apiKey = key
        context.logger[metadataKey: "key"] = "\(key.id)"
        metrics.keyRequest(key.id)
        do {
            if access == .admin, !key.admin {
                throw APIError(.forbidden, code: .forbidden, message: "\(context.endpointPath ?? "this endpoint") needs an admin key")
            }
            try await StreamGate.countRequest(key, quotas: quotas)
            return try await next(request, context)
        } catch let error as APIError {
            metrics.refusal(key: key.id, code: error.code)
            throw error
        }
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
