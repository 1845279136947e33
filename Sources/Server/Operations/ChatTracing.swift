import Instrumentation
import Routing
import Tracing

/// The spans of a chat that are the server's own (the HTTP server span is Hummingbird's `TracingMiddleware`, a
/// model call's the upstream client's, a tool's the agentic loop's): the analysis and the admission, each a child
/// of the request's span. With no tracer set up (tracing off) every call here is a no-op.
enum ChatTracing {
    /// `switchboard.analysis`: the level, score, route and rules version the analysis chose.
    static func analysis<T>(_ body: () throws -> T, describe: (T) -> (analysis: Analysis, rulesVersion: String)) rethrows -> T {
        let span = InstrumentationSystem.tracer.startSpan("switchboard.analysis", context: ServiceContext.current ?? .topLevel)
        defer { span.end() }
        do {
            let result = try body()
            if span.isRecording {
                let (analysis, rulesVersion) = describe(result)
                span.updateAttributes { attributes in
                    attributes["switchboard.level"] = analysis.level.name
                    attributes["switchboard.score"] = analysis.score
                    attributes["switchboard.route"] = analysis.route.name
                    attributes["switchboard.rules_version"] = rulesVersion
                }
            }
            return result
        } catch {
            span.recordError(error)
            span.attributes["error.type"] = (error as? APIError)?.code.rawValue ?? "_OTHER"
            throw error
        }
    }

    /// `switchboard.admission`: the quota's answer (`admitted`, or the refusal's error code).
    static func admission<T>(key: String?, _ body: () async throws -> T) async rethrows -> T {
        let span = InstrumentationSystem.tracer.startSpan("switchboard.admission", context: ServiceContext.current ?? .topLevel)
        defer { span.end() }
        if let key { span.attributes["switchboard.key"] = key }
        do {
            let result = try await body()
            span.attributes["switchboard.admission.outcome"] = "admitted"
            return result
        } catch {
            let code = (error as? APIError)?.code.rawValue ?? "_OTHER"
            span.attributes["switchboard.admission.outcome"] = code
            span.attributes["error.type"] = code
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    /// The W3C trace id (32 hex digits) of `context`, as the tracer propagates it; `nil` with tracing off.
    static func traceId(of context: ServiceContext?) -> String? {
        guard let context else { return nil }
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: DictionaryInjector())
        // traceparent: version-traceid-parentid-flags
        guard let parent = carrier["traceparent"] else { return nil }
        let parts = parent.split(separator: "-")
        guard parts.count == 4, parts[1].utf8.count == 32 else { return nil }
        return String(parts[1])
    }
}

private struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }
}
