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
        case .sessionStart(let sessionId):
            json.raw(",\"sessionId\":")
            json.string(sessionId)
            json.raw(",\"message\":\"Processing your request...\"")
        case .routing(let decision):
            json.raw(",\"complexity\":")
            json.string(decision.complexity)
            json.raw(",\"score\":")
            json.raw(decision.score.compactText)
            json.raw(",\"route\":")
            json.string(decision.route)
            json.raw(",\"action\":")
            json.string(decision.action)
            for (key, value) in [("provider", decision.provider), ("model", decision.model), ("message", decision.message)] {
                json.raw(",\"\(key)\":")
                if let value { json.string(value) } else { json.raw("null") }
            }
            json.raw(",\"matchedRules\":[")
            for (index, id) in decision.matchedRules.enumerated() {
                if index > 0 { json.raw(",") }
                json.string(id)
            }
            json.raw("],\"rulesVersion\":")
            json.string(decision.rulesVersion)
            if let from = decision.fallbackFrom {
                json.raw(",\"fallbackFrom\":")
                json.string(from)
                json.raw(",\"reason\":")
                json.string(decision.reason ?? "")
            }
        case .iterationStart(let iteration):
            json.raw(",\"iteration\":")
            json.integer(iteration)
        case .textChunk(let chunk) where accumulated:
            let escapedStart = accumulatedEscaped.count
            JSONWriter.appendEscaped(chunk, to: &accumulatedEscaped)
            json.raw(",\"chunk\":\"")
            json.bytes.append(contentsOf: accumulatedEscaped[escapedStart...])
            json.raw("\",\"accumulated\":\"")
            json.raw(accumulatedEscaped)
            json.raw("\"")
        case .textChunk(let chunk):
            json.raw(",\"chunk\":")
            json.string(chunk)
        case .toolDetected(let tool, let toolUseId):
            json.raw(",\"tool\":")
            json.string(tool)
            json.raw(",\"toolUseId\":")
            json.string(toolUseId)
            json.raw(",\"message\":")
            json.string("Preparing to use: \(tool)")
        case .toolsExecuting(let tools):
            json.raw(",\"count\":")
            json.integer(tools.count)
            json.raw(",\"tools\":[")
            for (index, tool) in tools.enumerated() {
                if index > 0 { json.raw(",") }
                json.string(tool)
            }
            json.raw("]")
        case .toolProgress(let progress):
            json.raw(",\"tool\":")
            json.string(progress.tool)
            json.raw(",\"toolUseId\":")
            json.string(progress.toolUseId)
            json.raw(",\"status\":")
            json.string(progress.status.rawValue)
            json.raw(",\"progress\":{\"current\":")
            json.integer(progress.current)
            json.raw(",\"total\":")
            json.integer(progress.total)
            json.raw("}")
            if let ms = progress.executionTimeMs {
                json.raw(",\"executionTime\":\"")
                json.integer(ms)
                json.raw("ms\",\"executionTimeMs\":")
                json.integer(ms)
            }
            if let error = progress.error {
                json.raw(",\"error\":")
                json.string(error)
            }
            if progress.truncated { json.raw(",\"truncated\":true") }
        case .complete(let completion):
            json.raw(",\"iterations\":")
            json.integer(completion.iterations)
            json.raw(",\"stopReason\":")
            json.string(completion.stopReason.rawValue)
            json.raw(",\"totalTimeMs\":")
            json.integer(completion.totalTimeMs)
            json.raw(",\"usage\":{\"inputTokens\":")
            json.integer(completion.usage.inputTokens)
            json.raw(",\"outputTokens\":")
            json.integer(completion.usage.outputTokens)
            json.raw(",\"cacheReadTokens\":")
            json.integer(completion.usage.cacheReadTokens)
            json.raw(",\"cacheWriteTokens\":")
            json.integer(completion.usage.cacheWriteTokens)
            json.raw("}")
            if let cost = completion.usage.costUSD {
                json.raw(",\"costUSD\":")
                json.millionths(cost)
            }
        case .error(let error):
            json.raw(",\"code\":")
            json.string(error.code.rawValue)
            json.raw(",\"message\":")
            json.string(error.message)
            json.raw(",\"retryable\":")
            json.bool(error.retryable)
        }
        json.raw("}\n\n")
        return json.bytes
    }
}
