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
            metrics.toolCall(definition.name, status: output.isError ? "failed" : "completed", duration: ContinuousClock.now - started)
            return output
        } catch {
            metrics.toolCall(definition.name, status: error is CancellationError ? "cancelled" : "failed",
                             duration: ContinuousClock.now - started)
            throw error
        }
    }
}
