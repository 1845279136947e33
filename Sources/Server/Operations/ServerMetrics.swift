import ChatCore
import Foundation
import HTTPTypes
import Hummingbird
import Prometheus
import Synchronization

/// The server's Prometheus metrics, served at `GET /metrics`.
///
/// Everything is counted per request, per stream (once, when it ends), per analysis or per tool call; nothing
/// per relayed event. Each application has its own registry, so tests and several servers in one process do
/// not mix their figures.
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    let streamsOpen: Gauge
    let streamEvents: Counter
    let streamDuration: DurationHistogram
    let analysisDuration: DurationHistogram

    static let requestBuckets: [Duration] = [.milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100),
                                             .milliseconds(500), .seconds(2), .seconds(10), .seconds(30), .seconds(120)]
    static let toolBuckets: [Duration] = [.milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500),
                                          .seconds(1), .seconds(5), .seconds(15), .seconds(30)]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        streamsOpen = registry.makeGauge(descriptor: .switchboard("streams_open", "Chat streams open now."))
        streamEvents = registry.makeCounter(descriptor: .switchboard("stream_events_total", "Events written to chat streams."))
        streamDuration = registry.makeDurationHistogram(
            descriptor: .switchboard("stream_duration_seconds", "Chat streams from the head to the last event."),
            buckets: [.seconds(1), .seconds(3), .seconds(10), .seconds(30), .seconds(60), .seconds(180), .seconds(600)])
        analysisDuration = registry.makeDurationHistogram(
            descriptor: .switchboard("analysis_duration_seconds", "Time to analyse one chat with the rules."),
            buckets: [.microseconds(5), .microseconds(10), .microseconds(20), .microseconds(50), .microseconds(200), .milliseconds(1)])
    }

    private struct RequestKey: Hashable {
        let method: HTTPRequest.Method
        let path: String
        let status: Int
    }

    /// The request metrics per method, route and status, made once (the registry's lookup builds names and
    /// compares label lists on every call).
    private let requestSeries = Mutex<[RequestKey: (Counter, DurationHistogram)]>([:])

    func request(method: HTTPRequest.Method, path: String, status: HTTPResponse.Status, duration: Duration) {
        let key = RequestKey(method: method, path: path, status: status.code)
        let (counter, histogram) = requestSeries.withLock { series in
            if let made = series[key] { return made }
            let made = (
                registry.makeCounter(descriptor: .switchboard("http_requests_total", "HTTP requests answered."),
                                     labels: [("method", method.rawValue), ("path", path), ("status", String(status.code))]),
                registry.makeDurationHistogram(
                    descriptor: .switchboard("http_request_duration_seconds",
                                             "HTTP requests from arrival to the end of the response body (streams included)."),
                    labels: [("path", path)], buckets: Self.requestBuckets))
            series[key] = made
            return made
        }
        counter.increment()
        histogram.record(duration)
    }

    func streamOpened() { streamsOpen.increment() }

    /// `outcome`: `complete`, `error` (with the error's code) or `client_gone`.
    func streamClosed(outcome: String, errorCode: String?, events: Int, duration: Duration) {
        streamsOpen.decrement()
        streamEvents.increment(by: Int64(events))
        streamDuration.record(duration)
        registry.makeCounter(descriptor: .switchboard("streams_total", "Chat streams ended, by how they ended."),
                             labels: [("outcome", outcome)]).increment()
        if let errorCode {
            registry.makeCounter(descriptor: .switchboard("stream_errors_total", "Chat streams ended by an error event, by its code."),
                                 labels: [("code", errorCode)]).increment()
        }
    }

    func analysis(complexity: String, route: String, endpoint: String, duration: Duration) {
        analysisDuration.record(duration)
        registry.makeCounter(descriptor: .switchboard("analyses_total", "Chats analysed, by the level and route chosen."),
                             labels: [("complexity", complexity), ("route", route), ("endpoint", endpoint)]).increment()
    }

    /// `status`: `completed`, `failed` or `cancelled`.
    func toolCall(_ tool: String, status: String, duration: Duration) {
        registry.makeCounter(descriptor: .switchboard("tool_calls_total", "Tool calls, by tool and outcome."),
                             labels: [("tool", tool), ("status", status)]).increment()
        registry.makeDurationHistogram(descriptor: .switchboard("tool_duration_seconds", "Tool call execution time."), labels: [("tool", tool)],
                                       buckets: Self.toolBuckets)
            .record(duration)
    }

    func rulesReload(accepted: Bool) {
        registry.makeCounter(
            descriptor: .switchboard("rules_reloads_total", "Rules file reloads, accepted or rejected (the last good rules keep serving)."),
            labels: [("result", accepted ? "accepted" : "rejected")]).increment()
    }

    func mcpServer(_ name: String, up: Bool) {
        registry.makeGauge(
            descriptor: .switchboard("mcp_server_up", "1 while the MCP server is connected, 0 while it is being reconnected."),
            labels: [("server", name)]).set(up ? 1.0 : 0.0)
    }
}

/// Counts each request with its route's path (not the raw URI, so the label set stays small) and status;
/// the duration runs to the end of the body, so a stream's is the whole stream.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            var response = try await next(request, context)
            let status = response.status
            let path = context.endpointPath ?? "unmatched"
            let body = response.body
            response.body = ResponseBody(contentLength: body.contentLength) { [metrics] writer in
                defer {
                    metrics.request(method: request.method, path: path, status: status, duration: ContinuousClock.now - started)
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

/// A tool with its calls counted and timed (validation failures included: it wraps the guarded tool).
struct InstrumentedTool: Tool {
    let wrapped: any Tool
    let metrics: ServerMetrics

    var definition: ToolDefinition { wrapped.definition }

    func execute(_ input: JSONValue) async throws -> ToolOutput {
        let started = ContinuousClock.now
        do {
            let output = try await wrapped.execute(input)
            metrics.toolCall(definition.name, status: output.isError ? "failed" : "completed", duration: ContinuousClock.now - started)
            return output
        } catch {
            metrics.toolCall(definition.name, status: error is CancellationError ? "cancelled" : "failed",
                             duration: ContinuousClock.now - started)
            throw error
        }
    }
}

extension MetricNameDescriptor {
    /// `switchboard_NAME`, with its help text.
    static func switchboard(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "switchboard", metricName: name, unitName: "", helpText: help)
    }
}
