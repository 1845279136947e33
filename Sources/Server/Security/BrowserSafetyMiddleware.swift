import HTTPTypes
import Hummingbird

/// What keeps a foreign web page from using the API through a visitor's browser:
/// - `POST` bodies must be `application/json`, which a page can only send after a CORS preflight (no "simple"
///   cross-site form or `text/plain` post);
/// - the `Host` header must be there, once, and name a host the server answers to, so a DNS-rebinding page (a
///   foreign name pointed at 127.0.0.1) is refused; `/health` and `/ready` answer any host, for load balancers;
/// - with CORS configured, an `Origin` that is not allowed is refused outright, not only left unreadable.
struct BrowserSafetyMiddleware<Context: RequestContext>: RouterMiddleware {
    let allowedHosts: Set<String>
    let cors: CORSPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if !ProbeRoutes.paths.contains(context.endpointPath ?? "") {
            // HTTP/1.1 asks for exactly one: without it the check below would have nothing to check, and with two a
            // proxy and this server could each read another.
            guard let authority = request.head.authority, request.headers[ProbeRoutes.hostField] == nil else {
                throw APIError(.badRequest, code: .invalidRequest,
                               message: request.head.authority == nil ? "a request needs a Host header" : "a request may have one Host header, not several",
                               field: "Host")
            }
            let host = Self.hostName(authority)
            guard allowedHosts.contains(host) else {
                throw APIError(.forbidden, code: .hostNotAllowed,
                               message: "this server does not answer to the host \"\(host)\"; add it to --allowed-hosts "
                                   + "(SWITCHBOARD_ALLOWED_HOSTS) if it is yours", field: "Host")
            }
        }
        if cors != .off, let origin = request.headers[.origin], !cors.allows(origin) {
            throw APIError(.forbidden, code: .originNotAllowed,
                           message: "the origin \(origin) may not call this API; the server's CORS origins do not list it",
                           field: "Origin")
        }
        if request.method == .post {
            let type = request.headers[.contentType]?.lowercased() ?? ""
            guard type == "application/json" || type.hasPrefix("application/json;") else {
                throw APIError(.unsupportedMediaType, code: .unsupportedMediaType,
                               message: "send the body as JSON with Content-Type: application/json"
                                   + (type.isEmpty ? " (no Content-Type was sent)" : " (got \(type))"),
                               field: "Content-Type")
            }
        }
        return try await next(request, context)
    }

    /// The host of an authority, lowercased, without its port: `Example.com:3000` → `example.com`,
    /// `[::1]:3000` → `[::1]`.
    static func hostName(_ authority: String) -> String {
        let lowered = authority.lowercased()
        if lowered.hasPrefix("["), let close = lowered.firstIndex(of: "]") { return String(lowered[...close]) }
        if let colon = lowered.lastIndex(of: ":") { return String(lowered[..<colon]) }
        return lowered
    }
}

/// The probes' routes, as the router names the route that matched: kept once (a generic type's static property
/// would be computed, and its set built, for every request).
enum ProbeRoutes {
    static let paths: Set<String> = ["/health", "/ready"]
    /// A second `Host` header: the first is the request's authority, any other stays among its fields.
    static let hostField = HTTPField.Name("Host")!
}
