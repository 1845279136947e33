import ChatCore
import Foundation
import Logging
import OTel
import Server
import ServiceLifecycle
import Tracing

/// What the process sets up once, before anything logs or traces: the log format (with the trace and span ids
/// of the current chat in every line when tracing), and with tracing on, swift-otel's tracer exporting OTLP as the
/// `OTEL_*` variables say.
enum Observability {
    /// Sets up logging and tracing; returns the service that exports spans (to run beside the server, which flushes
    /// what is left when it stops), `nil` with tracing off.
    static func bootstrap(_ configuration: ServerConfiguration, logFormat: LogFormat, metrics: ServerMetrics) throws -> (any Service)? {
        let provider: Logger.MetadataProvider? = configuration.tracing ? OTel.makeLoggingMetadataProvider() : nil
        switch logFormat {
        case .json:
            LoggingSystem.bootstrap({ label, provider in JSONLogHandler(label: label, metadataProvider: provider) }, metadataProvider: provider)
        case .text:
            LoggingSystem.bootstrap({ label, provider in StreamLogHandler.standardOutput(label: label, metadataProvider: provider) },
                                    metadataProvider: provider)
        }
        // A configuration with problems is refused by the server with all of them listed; the tracer is not set up
        // from it (swift-otel stops the process on some values, such as an exporter protocol not built in).
        guard configuration.tracing, configuration.problems.isEmpty else { return nil }
        var otel = OTel.Configuration.default
        // OTEL_SERVICE_NAME overrides it, as the specification says.
        otel.serviceName = "switchboard"
        otel.resourceAttributes = ["service.version": SwitchboardVersion.current]
        // Prometheus keeps the metrics and the log keeps the logs: only traces go out over OTLP.
        otel.logs.enabled = false
        otel.metrics.enabled = false
        otel.diagnosticLogLevel = .warning
        // The exporter's complaints go to the log, and what it drops is counted in /metrics.
        otel.diagnosticLogger = .custom(Logger(label: "switchboard.tracing") { label in
            ExporterDiagnostics(base: StreamLogHandler.standardError(label: label), metrics: metrics)
        })
        let backend = try OTel.makeTracingBackend(configuration: otel)
        InstrumentationSystem.bootstrap(backend.factory)
        return backend.service
    }
}

/// The span exporter's diagnostic log, passed on, with the spans it reports lost counted in
/// `switchboard_trace_spans_dropped_total`: a batch that could not be exported (the collector is down, slow or
/// refusing), or spans that found the queue full.
struct ExporterDiagnostics: LogHandler {
    var base: any LogHandler
    let metrics: ServerMetrics

    var logLevel: Logger.Level {
        get { base.logLevel }
        set { base.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String,
             function: String, line: UInt) {
        let fields = metadata.merging(explicit ?? [:]) { $1 }
        func count(_ key: String) -> Int { fields[key].flatMap { Int($0.description) } ?? 0 }
        switch message.description {
        case "Failed to export batch.": metrics.traceSpansDropped(count(("batch_size")))
        case "Spans were dropped this iteration because queue was full": metrics.traceSpansDropped(count("dropped_count"))
        default: break
        }
        base.log(level: level, message: message, metadata: explicit, source: source, file: file, function: function, line: line)
    }
}
