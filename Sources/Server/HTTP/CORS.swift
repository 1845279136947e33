import HTTPTypes
import Hummingbird

/// Which browser origins may call the API from another site.
public enum CORSPolicy: Sendable, Equatable {
    /// No CORS headers: same-origin pages (or a proxy that adds its own) only. The default.
    case off
    /// Any origin (`*`); fine for an API without cookies, which this one is.
    case anyOrigin
    /// These origins exactly (`https://app.example.com`), echoed back with `Vary: Origin`.
    case origins(Set<String>)

    /// Whether a page from `origin` may call the API.
    public func allows(_ origin: String) -> Bool {
        switch self {
        case .off: false
        case .anyOrigin: true
        case .origins(let origins): origins.contains(origin)
        }
    }

    /// From `SWITCHBOARD_CORS_ORIGINS`: empty for off, `*`, or origins separated by commas.
    public init(_ text: String) {
        let origins = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if origins.isEmpty { self = .off } else if origins.contains("*") { self = .anyOrigin } else { self = .origins(Set(origins)) }
    }
}

/// Answers CORS preflights and marks answers for allowed origins, exposing the smart-routing headers so a
/// page can read which route and model were chosen. (Hummingbird's CORS middleware exposes headers on
/// preflights only, and takes no list of origins from configuration.)
struct CORSMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: CORSPolicy
    /// The methods a page may use: DELETE too, which the browser client cancels a resumable chat with.
    static var allowedMethods: String { "GET, POST, DELETE, OPTIONS" }
    /// How long a browser may keep a preflight's answer, in seconds.
    static var preflightMaxAge: String { "600" }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin], let allowed = allowedOrigin(origin) else {
            return try await next(request, context)
        }
        var headers = HTTPFields()
        headers[.accessControlAllowOrigin] = allowed
        if allowed != "*" { headers[.vary] = "Origin" }
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            headers[.accessControlAllowMethods] = Self.allowedMethods
            headers[.accessControlAllowHeaders] = request.headers[.accessControlRequestHeaders] ?? "Content-Type"
            headers[.accessControlMaxAge] = Self.preflightMaxAge
            return Response(status: .noContent, headers: headers)
        }
        headers[.accessControlExposeHeaders] = exposedRoutingHeaders
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            // Errors need the headers too, or the page cannot read why its call failed.
            response = try error.response(from: request, context: context)
        }
        response.headers.append(contentsOf: headers)
        return response
    }

    private func allowedOrigin(_ origin: String) -> String? {
        guard policy.allows(origin) else { return nil }
        return policy == .anyOrigin ? "*" : origin
    }
}

/// The smart-routing headers a page on another origin may read.
private let exposedRoutingHeaders = HTTPField.Name.routingHeaders.map(\.rawName).joined(separator: ", ")
