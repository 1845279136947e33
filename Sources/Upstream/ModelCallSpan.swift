import ChatCore
import Foundation
import NIOHTTP1
import OTelSemanticConventions
import Tracing

/// A model call attempt as the OpenTelemetry GenAI conventions' inference span: `chat {model}`, a client span
/// child of whatever the calling task traces (the chat's request), one per attempt so a retry shows as its own
/// span with the error that caused it. The request carries the span's `traceparent`, so a provider that traces
/// joins the same trace. With no tracer set up every call here is a no-op.
struct ModelCallSpan {
    /// What every attempt of one call says about it.
    struct Call: Sendable {
        /// `gen_ai.provider.name`: `anthropic`, or `openai` for any OpenAI-compatible server.
        var provider: String
        var model: String
        var maxTokens: Int
        var server: (address: String, port: Int)?
        /// With content capture on: the messages sent (`gen_ai.input.messages`), bounded.
        var inputMessages: String?

        init(_ request: ModelRequest, provider: String, server: (address: String, port: Int)?,
             configuration: some UpstreamConfiguration) {
            self.provider = provider
            model = request.model
            maxTokens = request.maxTokens
            self.server = server
            inputMessages = configuration.captureContent ? ContentCapture.input(request) : nil
        }
    }

    let span: any Span

    /// The host and port of a provider's base URL.
    static func server(of baseURL: String) -> (address: String, port: Int)? {
        guard let url = URL(string: baseURL), let host = url.host else { return nil }
        return (host, url.port ?? (url.scheme == "https" ? 443 : 80))
    }

    /// Starts attempt `attempt` (1 for the first) of `call`.
    static func start(_ call: Call, attempt: Int) -> ModelCallSpan {
        let span = InstrumentationSystem.tracer.startSpan("chat \(call.model)", context: ServiceContext.current ?? .topLevel,
                                                          ofKind: .client)
        if span.isRecording {
            span.updateAttributes { attributes in
                attributes[OTelAttribute.genAi.operation.name] = "chat"
                attributes[OTelAttribute.genAi.provider.name] = call.provider
                attributes[OTelAttribute.genAi.request.model] = call.model
                attributes[OTelAttribute.genAi.request.maxTokens] = call.maxTokens
                attributes[OTelAttribute.genAi.request.stream] = true
                if let server = call.server {
                    attributes["server.address"] = server.address
                    attributes["server.port"] = server.port
                }
                // The HTTP conventions' count of resends: 0 for the first attempt.
                if attempt > 1 { attributes["http.request.resend_count"] = attempt - 1 }
                if let messages = call.inputMessages { attributes[OTelAttribute.genAi.input.messages] = messages }
            }
        }
        return ModelCallSpan(span: span)
    }

    /// `traceparent` (and whatever else the tracer propagates) in the request's headers.
    func propagate(into headers: inout HTTPHeaders) {
        InstrumentationSystem.tracer.inject(span.context, into: &headers, using: HeadersInjector())
    }

    /// The attempt answered: what the provider said it did.
    func end(_ turn: ModelTurn, captureContent: Bool) {
        if span.isRecording {
            span.updateAttributes { attributes in
                attributes[OTelAttribute.genAi.response.finishReasons] = [turn.stopReason.rawValue]
                attributes[OTelAttribute.genAi.usage.inputTokens] = turn.usage.inputTokens
                attributes[OTelAttribute.genAi.usage.outputTokens] = turn.usage.outputTokens
                if turn.usage.cacheReadTokens > 0 { attributes[OTelAttribute.genAi.usage.cacheRead.inputTokens] = turn.usage.cacheReadTokens }
                if turn.usage.cacheWriteTokens > 0 {
                    attributes[OTelAttribute.genAi.usage.cacheCreation.inputTokens] = turn.usage.cacheWriteTokens
                }
                if let model = turn.responseModel { attributes[OTelAttribute.genAi.response.model] = model }
                if let id = turn.responseId { attributes[OTelAttribute.genAi.response.id] = id }
                if let first = turn.firstChunkAfter {
                    attributes[OTelAttribute.genAi.response.timeToFirstChunk] = first.seconds
                }
                if captureContent { attributes[OTelAttribute.genAi.output.messages] = ContentCapture.output(turn) }
            }
        }
        span.end()
    }

    /// The attempt failed: `error.type` is the error's code (`rate_limited`, `first_byte_timeout`, …).
    func end(failing error: any Error) {
        let code = (error as? StreamError)?.code.rawValue ?? (error is CancellationError ? "cancelled" : "_OTHER")
        span.attributes["error.type"] = code
        span.setStatus(SpanStatus(code: .error, message: (error as? StreamError)?.message))
        span.end()
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

/// Writes propagation fields into NIO's headers, replacing any the request had.
struct HeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into headers: inout HTTPHeaders) {
        // `tracestate` is the caller's vendors' data: it stays here, only the trace's position travels on.
        guard key.lowercased() != "tracestate" else { return }
        headers.replaceOrAdd(name: key, value: value)
    }
}
