import Hummingbird

/// Counts each request with its route's path (not the raw URI, so the label set stays small) and status;
/// the duration runs to the end of the body, so a stream's is the whole stream.
/// A stream whose held head was replaced by an error answer is counted with the status it sent (`SentStatus`).
struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = SwitchboardRequestContext
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            var response = try await next(request, context)
            let status = response.status
            let path = context.endpointPath ?? "unmatched"
            let body = response.body
            let sent = context.sent
            response.body = ResponseBody(contentLength: body.contentLength) { [metrics] writer in
                defer {
                    metrics.request(method: request.method, path: path, status: sent.status ?? status, duration: ContinuousClock.now - started)
                }
                try await body.write(writer)
            }
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            metrics.request(method: request.method, path: context.endpointPath ?? "unmatched", status: status,
                            duration: ContinuousClock.now - started)
            throw error
        }
    }
}
