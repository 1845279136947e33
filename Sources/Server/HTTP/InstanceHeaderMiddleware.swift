import HTTPTypes
import Hummingbird
import Tracing

/// `X-Switchboard-Instance: ID` on every answer (errors included), so a client or an operator behind a load
/// balancer can tell which instance served a request; and on a traced request `X-Switchboard-Trace-Id` (32 hex
/// digits), so a frontend's bug report can name the trace. With tracing on it runs inside Hummingbird's
/// `TracingMiddleware`, whose span (joined to the caller's `traceparent`) is the current context here; with it off
/// there is no context and no trace header.
struct InstanceHeaderMiddleware<Context: RequestContext>: RouterMiddleware {
    let instance: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let traceId = ChatTracing.traceId(of: ServiceContext.current)
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        response.headers[.switchboardInstance] = instance
        if let traceId { response.headers[.switchboardTraceId] = traceId }
        return response
    }
}
