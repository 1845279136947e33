import Foundation

/// Encodes one stream's events as Server-Sent Events: `id: N`, `data: {json}`, blank line.
///
/// One encoder per stream. With `accumulated` it keeps the escaped text of every chunk so far, so `accumulated`
/// costs one copy per event, never a re-encoding of text that did not change; without, it keeps nothing.
public struct SSEEncoder: Sendable {
    private var nextId = 1
    private var accumulatedEscaped: [UInt8] = []
    private let accumulated: Bool

    /// `firstId`: the `id` of the first event, for a stream that continues another encoder's.
    public init(accumulated: Bool = true, firstId: Int = 1) {
        self.accumulated = accumulated
        self.nextId = firstId
    }

    /// The keepalive comment.
    public static let keepalive: [UInt8] = Array(": keepalive\n\n".utf8)

    /// The SSE message for `event`, stamped with `date`.
    public mutating func encode(_ event: StreamEvent, at date: Date = Date()) -> [UInt8] {
        var json = JSONWriter(capacity: 128 + accumulatedEscaped.count * 2)
        json.raw("id: ")
        json.integer(nextId)
        nextId += 1
        json.raw("\ndata: {\"type\":\"")
        json.raw(event.type)
        json.raw("\",\"timestamp\":\"")
        Timestamp.appendISO8601(date, to: &json.bytes)
        json.raw("\"")
        switch event {
        case .sessionStart(let sessionId, let traceId):
            json.field("sessionId", sessionId)
            if let traceId { json.field("traceId", traceId) }
            json.raw(",\"message\":\"Processing your request...\"")
        case .routing(let decision):
            json.field("complexity", decision.complexity)
            json.field("score", decision.score)
            json.field("route", decision.route)
            json.field("action", decision.action.rawValue)
            json.field("provider", orNull: decision.provider)
            json.field("model", orNull: decision.model)
            json.field("message", orNull: decision.message)
            json.field("matchedRules", decision.matchedRules)
            json.field("rulesVersion", decision.rulesVersion)
            if let from = decision.fallbackFrom {
                json.field("fallbackFrom", from)
                json.field("reason", decision.reason ?? "")
            }
            if let semantic = decision.semantic {
                json.key("semantic")
                json.raw("{\"decidedBy\":")
                json.string(semantic.decidedBy)
                json.field("rulesLevel", semantic.rulesLevel)
                json.key("probabilities")
                json.raw("{")
                for (index, entry) in semantic.probabilities.enumerated() {
                    if index > 0 { json.raw(",") }
                    json.string(entry.level)
                    json.raw(":")
                    json.raw(entry.probability.compactText)
                }
                json.raw("}")
                json.key("nearest")
                json.raw("[")
                for (index, neighbour) in semantic.nearest.enumerated() {
                    if index > 0 { json.raw(",") }
                    json.raw("{\"text\":")
                    json.string(neighbour.text)
                    json.field("level", neighbour.level)
                    json.field("similarity", neighbour.similarity)
                    json.raw("}")
                }
                json.raw("]}")
            }
        case .iterationStart(let iteration):
            json.field("iteration", iteration)
        case .textChunk(let chunk) where accumulated:
            let escapedStart = accumulatedEscaped.count
            JSONWriter.appendEscaped(chunk, to: &accumulatedEscaped)
            json.raw(",\"chunk\":\"")
            json.bytes.append(contentsOf: accumulatedEscaped[escapedStart...])
            json.raw("\",\"accumulated\":\"")
            json.raw(accumulatedEscaped)
            json.raw("\"")
        case .textChunk(let chunk):
            json.field("chunk", chunk)
        case .thinkingChunk(let chunk):
            json.field("chunk", chunk)
        case .toolDetected(let tool, let toolUseId):
            json.field("tool", tool)
            json.field("toolUseId", toolUseId)
            json.field("message", "Preparing to use: \(tool)")
        case .toolsExecuting(let tools):
            json.field("count", tools.count)
            json.field("tools", tools)
        case .toolProgress(let progress):
            json.field("tool", progress.tool)
            json.field("toolUseId", progress.toolUseId)
            json.field("status", progress.status.rawValue)
            json.raw(",\"progress\":{\"current\":")
            json.integer(progress.current)
            json.field("total", progress.total)
            json.raw("}")
            if let ms = progress.executionTimeMs {
                json.raw(",\"executionTime\":\"")
                json.integer(ms)
                json.raw("ms\"")
                json.field("executionTimeMs", ms)
            }
            if let error = progress.error { json.field("error", error) }
            if progress.truncated { json.raw(",\"truncated\":true") }
            if let input = progress.input {
                json.key("input")
                json.value(input)
            }
            if let result = progress.result {
                json.field("result", result)
                if progress.resultTruncated { json.raw(",\"resultTruncated\":true") }
            }
        case .complete(let completion):
            json.field("iterations", completion.iterations)
            json.field("stopReason", completion.stopReason.rawValue)
            json.field("totalTimeMs", completion.totalTimeMs)
            json.raw(",\"usage\":{\"inputTokens\":")
            json.integer(completion.usage.inputTokens)
            json.field("outputTokens", completion.usage.outputTokens)
            json.field("cacheReadTokens", completion.usage.cacheReadTokens)
            json.field("cacheWriteTokens", completion.usage.cacheWriteTokens)
            json.raw("}")
            if let cost = completion.usage.costUSD {
                json.key("costUSD")
                json.millionths(cost)
            }
            if let messages = completion.messages {
                json.key("messages")
                json.value(.array(messages.map(\.json)))
            }
        case .error(let error):
            json.field("code", error.code.rawValue)
            json.field("message", error.message)
            json.key("retryable")
            json.bool(error.retryable)
        }
        json.raw("}\n\n")
        return json.bytes
    }
}
