import HTTPTypes
import Hummingbird
import Tracing

/// `X-Switchboard-Trace-Id: <32 hex digits>` on every answer of a traced request (errors included), so a
/// frontend's bug report can name the trace. Runs inside Hummingbird's `TracingMiddleware`, whose span (the
/// request's, joined to the caller's `traceparent` when it sent one) is the current context here.
struct TraceHeaderMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let traceId = ChatTracing.traceId(of: ServiceContext.current)
        do {
            var response = try await next(request, context)
            if let traceId { response.headers[.switchboardTraceId] = traceId }
            return response
        } catch let error as HTTPResponseError {
            var response = try error.response(from: request, context: context)
            if let traceId { response.headers[.switchboardTraceId] = traceId }
            return response
        }
    }
}
