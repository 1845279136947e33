import HTTPTypes
import Hummingbird

/// A known path asked with a method it does not answer gets `405 Method Not Allowed` with the `Allow` header
/// (and the usual JSON error body), not a `404` that would say the path does not exist.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Every path of the API and the methods it answers.
    static var methods: [String: [HTTPRequest.Method]] {
        var methods: [String: [HTTPRequest.Method]] = [
            "/mcp/chat/stream": [.post], "/mcp/chat/stream/{sessionId}": [.get, .delete], "/mcp/chat": [.post], "/mcp/chat/analyze": [.post],
            "/rules": [.get], "/rules/calibration": [.get], "/tools": [.get], "/metrics": [.get], "/health": [.get], "/ready": [.get],
        ]
        for path in FrontendAssets.paths { methods[path] = [.get] }
        return methods
    }

    private let table = Self.methods

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let allowed = table[request.uri.path], !allowed.contains(request.method),
              !(request.method == .head && allowed.contains(.get)) else {
            return try await next(request, context)
        }
        let list = allowed.map(\.rawValue).joined(separator: ", ")
        var response = try APIError(.methodNotAllowed, code: .methodNotAllowed,
                                    message: "\(request.uri.path) answers \(list), not \(request.method.rawValue)").response(from: request, context: context)
        response.headers[.allow] = list
        return response
    }
}
