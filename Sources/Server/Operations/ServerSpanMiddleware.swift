import HTTPTypes
import Hummingbird
import Instrumentation
import Tracing

/// The HTTP server span of every request, joined to the caller's `traceparent`, in OpenTelemetry's HTTP
/// conventions: Hummingbird's `TracingMiddleware`, less what must not reach a trace backend, plus the status the
/// client really got.
/// - `url.query` keeps the names of the query's parameters, never their values (a key sent as `?api_key=` stays
///   out of the trace);
/// - a stream whose held head was replaced by an error answer (`SentStatus`) ends with that status (and as an error
///   for a 5xx), not the `200` its handler returned;
/// - the span ends when the body has been written, so a stream's span is the whole stream.
struct ServerSpanMiddleware: RouterMiddleware {
    typealias Context = SwitchboardRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var parent = ServiceContext.current ?? ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(request.headers, into: &parent, using: HTTPHeadersExtractor())
        let span = startSpan("HTTP \(request.method.rawValue) route not found", context: parent, ofKind: .server)
        span.updateAttributes { attributes in
            attributes["http.request.method"] = request.method.rawValue
            attributes["url.path"] = request.uri.path
            if let query = Self.queryNames(request.uri.query) { attributes["url.query"] = query }
            attributes["user_agent.original"] = request.headers[.userAgent]
            attributes["http.request.body.size"] = request.headers[.contentLength].flatMap { Int($0) }
        }
        do {
            return try await ServiceContext.$current.withValue(span.context) {
                var response = try await next(request, context)
                if let path = context.endpointPath { span.operationName = path }
                let returned = response.status
                span.updateAttributes { attributes in
                    attributes["http.route"] = context.endpointPath
                    attributes["http.response.body.size"] = response.body.contentLength
                }
                let sent = context.sent
                let ending = SpanEnding(span)
                let body = response.body
                response.body = ResponseBody(contentLength: body.contentLength) { writer in
                    defer { ending.end(status: sent.status ?? returned) }
                    try await body.write(writer)
                }
                return response
            }
        } catch {
            if let path = context.endpointPath { span.operationName = path }
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            span.updateAttributes { $0["http.route"] = context.endpointPath }
            span.recordError(error)
            SpanEnding(span).end(status: status)
            throw error
        }
    }

    /// A query's parameter names with their values taken out: `api_key=REDACTED&since=REDACTED`; `nil` without one.
    static func queryNames(_ query: String?) -> String? {
        guard let query, !query.isEmpty else { return nil }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let name = pair.prefix { $0 != "=" }.prefix(64)
            return "\(name)=REDACTED"
        }.joined(separator: "&")
    }
}

/// Ends a span once, with its response's status (the body's post-write closure, or its release when it was never
/// written).
private final class SpanEnding: @unchecked Sendable {
    // Touched by the post-write closure, then by deinit: never at the same time.
    private var span: (any Span)?

    init(_ span: any Span) {
        self.span = span
    }

    func end(status: HTTPResponse.Status) {
        guard let span else { return }
        self.span = nil
        span.updateAttributes { $0["http.response.status_code"] = Int(status.code) }
        if status.code >= 500 { span.setStatus(SpanStatus(code: .error)) }
        span.end()
    }

    deinit {
        span?.end()
    }
}

/// Reads propagation fields from a request's headers.
private struct HTTPHeadersExtractor: Extractor {
    func extract(key: String, from headers: HTTPFields) -> String? {
        HTTPField.Name(key).flatMap { headers[$0] }
    }
}
