import ChatCore
import ConfigFiles
import Foundation
import Hummingbird
import NIOCore
import Routing
import Tools

/// The operator's endpoints: `/metrics`, `/rules`, `/rules/calibration`, `/rules/review`, `/rules/shadow` and `/tools` (an admin key on the main
/// port; no key on `--admin-port`), and the `/health` probe (public).
struct OperatorController: Sendable {
    let rules: RulesStore
    let tools: ToolBox
    let toolSources: [String: String]
    let mcpServers: [MCPServerConnection]
    let metrics: ServerMetrics
    let breaker: CircuitBreaker
    let recorder: StreamRecorder?

    /// `/health`: liveness, for load balancers; degraded (still 200: the server answers) while an MCP server is
    /// being reconnected or a provider cools down.
    func addProbes<Context: RequestContext>(to routes: some RouterMethods<Context>) {
        routes.get("/health") { _, _ in
            let states = Dictionary(uniqueKeysWithValues: mcpServers.map {
                ($0.name, $0.isConnected ? HealthResponse.MCPServerState.connected : .reconnecting)
            })
            return try Response.json(HealthResponse(mcpServers: states, providersCoolingDown: breaker.coolingDown))
        }
    }

    func addRoutes<Context: RequestContext>(to routes: some RouterMethods<Context>) {
        routes.get("/metrics") { _, _ in
            for server in mcpServers { metrics.mcpServer(server.name, up: server.isConnected) }
            metrics.refreshInstance()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
        }
        routes.get("/rules") { _, _ in
            try Response.json(RulesStatusResponse(rules))
        }
        routes.get("/tools") { _, _ in
            try Response.json(ToolListResponse(tools: tools.definitions, sources: toolSources))
        }
        routes.get("/rules/calibration") { request, _ in try await calibration(request) }
        routes.get("/rules/review") { request, _ in try await review(request) }
        routes.get("/rules/shadow") { _, _ in
            guard let shadow = rules.shadow else {
                // No report to give: a 404, as for any resource that is not there.
                throw APIError(.notFound, code: .notConfigured,
                               message: "no shadow rules: start the server with --shadow-rules FILE (SWITCHBOARD_SHADOW_RULES)")
            }
            return try Response.json(shadow.report)
        }
    }

    /// `/rules/review`: the chats of the last `since` (24h by default; at most `limit`, 1,000) that look misrouted.
    private func review(_ request: Request) async throws -> Response {
        guard let recorder else {
            throw APIError(.serviceUnavailable, code: .notConfigured, message: "this server keeps no stream records")
        }
        let sinceText = request.uri.queryParameters["since"].map(String.init) ?? "24h"
        guard let window = Review.windowMilliseconds(sinceText) else {
            throw APIError(.badRequest, code: .invalidRequest, message: "since must be a duration such as 90s, 30m, 24h or 7d",
                           field: "since")
        }
        let limit = try Self.parameter(request, "limit", default: 1_000, in: 1...100_000)
        await recorder.flush()
        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded())
        let streams = try await recorder.records.reviewed(since: now - window, limit: limit)
        let rules = rules.active.rules
        return try Response.json(ReviewResponse(Review.flag(streams, rules: rules), looked: streams.count, rulesVersion: rules.fingerprint))
    }

    /// A whole-number query parameter within `range`; a 400 naming it otherwise.
    static func parameter(_ request: Request, _ name: String, default value: Int, in range: ClosedRange<Int>) throws(APIError) -> Int {
        guard let text = request.uri.queryParameters[Substring(name)] else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw APIError(.badRequest, code: .invalidRequest,
                           message: "\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)", field: name)
        }
        return number
    }

    /// `/rules/calibration`: each level's `estimated_seconds` against what its streams took, with the lines to change.
    private func calibration(_ request: Request) async throws -> Response {
        guard let recorder else {
            throw APIError(.serviceUnavailable, code: .notConfigured, message: "this server keeps no stream records")
        }
        // More than the server keeps is all it keeps.
        let window = min(try Self.parameter(request, "window", default: 10_000, in: 1...10_000_000), recorder.records.limit)
        let minSamples = try Self.parameter(request, "min_samples", default: 10, in: 1...10_000)
        // What finished a moment ago is counted too.
        await recorder.flush()
        let active = rules.active
        let samples = try await recorder.records.samples(window: window).map {
            StreamSample(level: $0.level, route: $0.route, durationMs: $0.durationMs, firstTextMs: $0.firstTextMs)
        }
        let calibration = Calibration(rules: active.rules, samples: samples, minSamples: minSamples)
        // Suggestions are edits to the file as it is on disk.
        let yaml = RulesFile.text(active.source)
        return try Response.json(CalibrationResponse(calibration, rulesVersion: active.rules.fingerprint, window: window,
                                                     suggestions: calibration.editedLines(of: yaml, path: active.source.path)))
    }
}
