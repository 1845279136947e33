import ChatCore

/// A tool with its calls counted and timed (validation failures included: it wraps the guarded tool).
struct InstrumentedTool: Tool {
    let wrapped: any Tool
    let metrics: ServerMetrics

    var definition: ToolDefinition { wrapped.definition }

    func execute(_ input: JSONValue) async throws -> ToolOutput {
        let started = ContinuousClock.now
        do {
            let output = try await wrapped.execute(input)
            metrics.toolCall(definition.name, .finished(output.isError ? .failed : .completed), duration: ContinuousClock.now - started)
            return output
        } catch {
            metrics.toolCall(definition.name, error is CancellationError ? .cancelled : .finished(.failed),
                             duration: ContinuousClock.now - started)
            throw error
        }
    }
}

/// How a tool call ended, as `switchboard_tool_calls_total{status}` counts it: in the stream's words
/// (`ToolProgress.Status`, `completed` or `failed`), or `cancelled` (the stream ended first).
enum ToolCallOutcome: Sendable, Hashable {
    case finished(ToolProgress.Status)
    case cancelled

    var label: String {
        switch self {
        case .finished(let status): status.rawValue
        case .cancelled: "cancelled"
        }
    }
}
