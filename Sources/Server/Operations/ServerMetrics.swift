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
    let streamEventsRelayed: Counter
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
        streamEventsRelayed = registry.makeCounter(descriptor: .switchboard(
            "stream_events_relayed_total", "Of those, the model's events written where the upstream was read, without a task switch."))
        streamDuration = registry.makeDurationHistogram(
            descriptor: .switchboard("stream_duration_seconds", "Chat streams from the head to the last event."),
            buckets: [.seconds(1), .seconds(3), .seconds(10), .seconds(30), .seconds(60), .seconds(180), .seconds(600)])
        analysisDuration = registry.makeDurationHistogram(
            descriptor: .switchboard("analysis_duration_seconds", "Time to analyse one chat with the rules."),
            buckets: [.microseconds(5), .microseconds(10), .microseconds(20), .microseconds(50), .microseconds(200), .milliseconds(1)])
    }

    /// A labelled series: the metric's name and its label values.
    private struct SeriesKey: Hashable {
        let name: String
        let values: [String]
    }

    /// Every labelled series, made once: the registry's own lookup builds the full name and compares label
    /// lists on each call, which requests, analyses and tool calls need not pay again and again.
    private let counters = Mutex<[SeriesKey: Counter]>([:])
    private let histograms = Mutex<[SeriesKey: DurationHistogram]>([:])
    private let gauges = Mutex<[SeriesKey: Gauge]>([:])

    private func counter(_ name: String, _ help: @autoclosure () -> String, _ labels: [(String, String)]) -> Counter {
        Self.cached(counters, name, labels) { registry.makeCounter(descriptor: .switchboard(name, help()), labels: labels) }
    }

    private func histogram(_ name: String, _ help: @autoclosure () -> String, _ labels: [(String, String)],
                           buckets: [Duration]) -> DurationHistogram {
        Self.cached(histograms, name, labels) {
            registry.makeDurationHistogram(descriptor: .switchboard(name, help()), labels: labels, buckets: buckets)
        }
    }

    private func gauge(_ name: String, _ help: @autoclosure () -> String, _ labels: [(String, String)]) -> Gauge {
        Self.cached(gauges, name, labels) { registry.makeGauge(descriptor: .switchboard(name, help()), labels: labels) }
    }

    /// The series `name` with these label values from `cache`, made with `make` the first time.
    private static func cached<Series>(_ cache: borrowing Mutex<[SeriesKey: Series]>, _ name: String, _ labels: [(String, String)],
                                       _ make: () -> Series) -> Series {
        cache.withLock { made in
            let key = SeriesKey(name: name, values: labels.map(\.1))
            if let series = made[key] { return series }
            let series = make()
            made[key] = series
            return series
        }
    }

    func request(method: HTTPRequest.Method, path: String, status: HTTPResponse.Status, duration: Duration) {
        counter("http_requests_total", "HTTP requests answered.",
                [("method", method.rawValue), ("path", path), ("status", String(status.code))]).increment()
        histogram("http_request_duration_seconds",
                  "HTTP requests from arrival to the end of the response body (streams included).",
                  [("path", path)], buckets: Self.requestBuckets).record(duration)
    }

    func streamOpened() { streamsOpen.increment() }

    /// A stream ended: how, and with which error code when it ended with an `error` event.
    /// `relayed`: of the `events`, the model's that were written (or kept, for a resumable stream) where the
    /// upstream was read.
    func streamClosed(outcome: StreamOutcome, errorCode: StreamErrorCode?, events: Int, relayed: Int, duration: Duration) {
        streamsOpen.decrement()
        streamEvents.increment(by: Int64(events))
        streamEventsRelayed.increment(by: Int64(relayed))
        streamDuration.record(duration)
        counter("streams_total", "Chat streams ended, by how they ended.", [("outcome", outcome.rawValue)]).increment()
        if let errorCode {
            counter("stream_errors_total", "Chat streams ended by an error event, by its code.", [("code", errorCode.rawValue)]).increment()
        }
    }

    func analysis(complexity: String, route: String, endpoint: String, duration: Duration) {
        analysisDuration.record(duration)
        counter("analyses_total", "Chats analysed, by the level and route chosen.",
                [("complexity", complexity), ("route", route), ("endpoint", endpoint)]).increment()
    }

    /// `status`: `completed`, `failed` or `cancelled`.
    func toolCall(_ tool: String, _ outcome: ToolCallOutcome, duration: Duration) {
        counter("tool_calls_total", "Tool calls, by tool and outcome.", [("tool", tool), ("status", outcome.label)]).increment()
        histogram("tool_duration_seconds", "Tool call execution time.", [("tool", tool)], buckets: Self.toolBuckets)
            .record(duration)
    }

    func rulesReload(accepted: Bool) {
        counter("rules_reloads_total", "Rules file reloads, accepted or rejected (the last good rules keep serving).",
                [("result", accepted ? "accepted" : "rejected")]).increment()
    }

    private let instanceInfo = Mutex<(labels: [String], gauge: Gauge)?>(nil)
    /// Where the instance's id and the rules and keys versions are read, at each scrape.
    private let identity = Mutex<(@Sendable () -> (id: String, rules: String?, keys: String?))?>(nil)

    /// Tells the metrics how to read this instance's identity (`buildRouter` does).
    func identify(_ read: @escaping @Sendable () -> (id: String, rules: String?, keys: String?)) {
        identity.withLock { $0 = read }
    }

    /// Brings `switchboard_instance_info` up to date: called before each scrape.
    func refreshInstance() {
        guard let read = identity.withLock({ $0 }) else { return }
        let now = read()
        instance(now.id, rulesVersion: now.rules, keysVersion: now.keys)
    }

    /// `switchboard_instance_info{instance, rules_version, keys_version} 1`: one series, replaced when the rules or
    /// the keys change, so instances serving different files are told apart on a dashboard.
    private func instance(_ id: String, rulesVersion: String?, keysVersion: String?) {
        let labels = [id, rulesVersion ?? "none", keysVersion ?? "none"]
        instanceInfo.withLock { info in
            guard info?.labels != labels else { return }
            if let old = info?.gauge { registry.unregisterGauge(old) }
            let gauge = registry.makeGauge(
                descriptor: .switchboard("instance_info", "This instance's id and the versions of the rules and keys it serves."),
                labels: [("instance", labels[0]), ("rules_version", labels[1]), ("keys_version", labels[2])])
            gauge.set(1.0)
            info = (labels, gauge)
        }
    }

    func mcpServer(_ name: String, up: Bool) {
        gauge("mcp_server_up", "1 while the MCP server is connected, 0 while it is being reconnected.", [("server", name)])
            .set(up ? 1.0 : 0.0)
    }
    // Per key: the label is the key's id, never the key; requests without a key count as "none".

    func keyRequest(_ key: String) {
        counter("key_requests_total", "Authenticated requests, by key id.", [("key", key)]).increment()
    }

    func keyStream(_ key: String?) {
        counter("key_streams_total", "Chat streams opened, by key id.", [("key", key ?? "none")]).increment()
    }

    func keyTokens(_ key: String, input: Int, output: Int) {
        counter("key_tokens_total", "Model tokens charged to keys (each model call as it ends, a cut call estimated), by key id and direction.",
                [("key", key), ("direction", "input")]).increment(by: Int64(max(0, input)))
        counter("key_tokens_total", "Model tokens charged to keys (each model call as it ends, a cut call estimated), by key id and direction.",
                [("key", key), ("direction", "output")]).increment(by: Int64(max(0, output)))
    }

    /// A finished model call: its tokens by kind and, when its model has a price, its cost.
    func modelCall(provider: String, model: String, route: String, usage: Usage) {
        let labels = [("provider", provider), ("model", model), ("route", route)]
        counter("model_calls_total", "Model calls ended (a cut or failed call too, at what it produced), by provider, model and route.", labels).increment()
        for (kind, tokens) in [("input", usage.inputTokens), ("output", usage.outputTokens),
                               ("cache_read", usage.cacheReadTokens), ("cache_write", usage.cacheWriteTokens)] where tokens > 0 {
            counter("model_tokens_total", "Model tokens used by finished calls, by provider, model, route and kind.",
                    labels + [("kind", kind)]).increment(by: Int64(tokens))
        }
        if let cost = usage.costUSD, cost.isFinite, cost >= 0 {
            counter("model_cost_usd_total", "What finished model calls cost in US dollars (from the rules file's prices).", labels)
                .increment(by: cost)
        }
    }

    // The OpenTelemetry GenAI client metrics, in Prometheus's naming of the conventions (no `switchboard_` prefix,
    // so dashboards made for them work), with the conventions' bucket boundaries; `route` is Switchboard's own.

    /// `gen_ai.client.operation.duration` and `gen_ai.client.operation.time_to_first_chunk`.
    static let genAISecondsBuckets: [Duration] = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
        .map { .milliseconds(Int64(($0 * 1000).rounded())) }
    /// `gen_ai.client.token.usage`.
    static let genAITokenBuckets: [Double] = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]

    private let valueHistograms = Mutex<[SeriesKey: ValueHistogram]>([:])

    /// One model call (all its attempts, as its caller saw it) by provider, model and route: how long it took
    /// (with `error_type` when it failed), its time to first chunk, and its input and output tokens.
    func genAICall(provider: String, model: String, route: String, duration: Duration, errorType: String?,
                   firstChunk: Duration?, usage: Usage?) {
        let labels = [("gen_ai_operation_name", "chat"), ("gen_ai_provider_name", provider), ("gen_ai_request_model", model),
                      ("route", route)]
        // A success has an empty `error_type`, which Prometheus reads as no such label.
        genAISeconds("gen_ai_client_operation_duration", "GenAI operation duration (model calls, retries included).",
                     labels + [("error_type", errorType ?? "")]).record(duration)
        if let firstChunk {
            genAISeconds("gen_ai_client_operation_time_to_first_chunk",
                         "Time from the model request to the first text or tool call of its answer.", labels).record(firstChunk)
        }
        guard let usage else { return }
        for (type, tokens) in [("input", usage.inputTokens), ("output", usage.outputTokens)] {
            let typed = labels + [("gen_ai_token_type", type)]
            Self.cached(valueHistograms, "gen_ai_client_token_usage", typed) {
                registry.makeValueHistogram(
                    descriptor: MetricNameDescriptor(metricName: "gen_ai_client_token_usage", unitName: "",
                                                     helpText: "Number of input and output tokens used by model calls."),
                    labels: typed, buckets: Self.genAITokenBuckets)
            }.record(Double(tokens))
        }
    }

    /// Spans the exporter lost (a batch it could not send, or spans that found its queue full).
    public func traceSpansDropped(_ count: Int) {
        guard count > 0 else { return }
        counter("trace_spans_dropped_total", "Spans not exported: the collector failed or was too slow, or the queue was full.", [])
            .increment(by: Int64(count))
    }

    /// A GenAI histogram in seconds, named as the conventions' Prometheus name (`NAME_seconds`), their buckets.
    private func genAISeconds(_ name: String, _ help: String, _ labels: [(String, String)]) -> DurationHistogram {
        Self.cached(histograms, name + "_seconds", labels) {
            registry.makeDurationHistogram(descriptor: MetricNameDescriptor(metricName: name, unitName: "seconds", helpText: help),
                                           labels: labels, buckets: Self.genAISecondsBuckets)
        }
    }

    func streamRecordDropped(count: Int = 1) {
        counter("stream_records_dropped_total", "Finished streams not kept for calibration (the database fell behind or failed).", [])
            .increment(by: Int64(count))
    }

    func refusal(key: String?, code: APIErrorCode) {
        counter("refusals_total", "Requests refused, by key id and error code.", [("key", key ?? "none"), ("code", code.rawValue)])
            .increment()
    }
}

extension MetricNameDescriptor {
    /// `switchboard_NAME`, with its help text.
    static func switchboard(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "switchboard", metricName: name, unitName: "", helpText: help)
    }

}
