import HTTPTypes
import Hummingbird

/// `X-Switchboard-Instance: ID` on every answer (errors included), so a client or an operator behind a load
/// balancer can tell which instance served a request.
struct InstanceHeaderMiddleware<Context: RequestContext>: RouterMiddleware {
    let instance: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            var response = try await next(request, context)
            response.headers[.switchboardInstance] = instance
            return response
        } catch let error as HTTPResponseError {
            var response = try error.response(from: request, context: context)
            response.headers[.switchboardInstance] = instance
            return response
        }
    }
}
