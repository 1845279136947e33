import HTTPTypes
import Hummingbird

/// A known path asked with a method it does not answer gets `405 Method Not Allowed` with the `Allow` header
/// (and the usual JSON error body), not a `404` that would say the path does not exist.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Every path of the API and the methods it answers.
    static var methods: [String: [HTTPRequest.Method]] {
        var methods: [String: [HTTPRequest.Method]] = [
            "/mcp/chat/stream": [.post], "/mcp/chat/stream/{sessionId}": [.get, .delete], "/mcp/chat": [.post], "/mcp/chat/analyze": [.post],
            "/mcp/chat/feedback": [.post], "/rules/review": [.get], "/rules/shadow": [.get],
            "/rules": [.get], "/rules/calibration": [.get], "/tools": [.get], "/metrics": [.get], "/health": [.get], "/ready": [.get],
            "/v1/chat/completions": [.post], "/v1/messages": [.post], "/v1/models": [.get],
        ]
        for path in FrontendAssets.paths { methods[path] = [.get] }
        return methods
    }

    private let table = Self.methods

    /// The methods of the path `path` matches: itself, or a template whose `{name}` segments match any segment.
    private func allowed(_ path: String) -> [HTTPRequest.Method]? {
        if let methods = table[path] { return methods }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        return table.first { template, _ in
            guard template.contains("{") else { return false }
            let parts = template.split(separator: "/", omittingEmptySubsequences: false)
            return parts.count == segments.count
                && zip(parts, segments).allSatisfy { part, segment in part.hasPrefix("{") ? !segment.isEmpty : part == segment }
        }?.value
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let allowed = allowed(request.uri.path), !allowed.contains(request.method),
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
