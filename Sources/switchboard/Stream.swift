import ArgumentParser
import AsyncHTTPClient
import ChatCore
import Foundation
import NIOCore

struct Stream: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stream a chat from a running server and show each event as it arrives, with timings.",
        discussion: """
            Each line shows the time since the request, the time since the previous event, the latency \
            (arrival minus the event's timestamp), the event type and its interesting fields; a summary follows.
            """
    )

    @Option(help: "The server's base URL.")
    var url = "http://localhost:3000"

    @Option(help: "Model to ask for (default: the server's).")
    var model: String?

    @Option(help: "System prompt.")
    var system: String?

    @Option(help: "API key for a server that needs one (default: $SWITCHBOARD_API_KEY).")
    var apiKey: String?

    @Flag(help: "Use smart routing (POST /mcp/chat): the rules pick the model, or answer with advice.")
    var routed = false

    @Flag(help: "Print each event's JSON instead of a summary line.")
    var json = false

    @Argument(help: "The message to send.")
    var query: [String]

    func validate() throws {
        if query.joined().trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw ValidationError("Give a message, for example: switchboard stream \"give me list of employees with 5-10% increment\"")
        }
    }

    func run() async throws {
        var body: [String: JSONValue] = [
            "messages": .array([.object(["role": .string("user"), "content": .string(query.joined(separator: " "))])]),
        ]
        if let model { body["model"] = .string(model) }
        if let system { body["system"] = .string(system) }
        var request = HTTPClientRequest(url: url.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + (routed ? "/mcp/chat" : "/mcp/chat/stream"))
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        if let key = apiKey ?? ProcessInfo.processInfo.environment["SWITCHBOARD_API_KEY"], !key.isEmpty {
            request.headers.add(name: "authorization", value: "Bearer \(key)")
        }
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(JSONValue.object(body))))

        let clock = ContinuousClock()
        let start = clock.now
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        } catch {
            printError("cannot reach \(url): \(error)")
            throw ExitCode(3)
        }
        guard response.status == .ok else {
            let text = (try? await response.body.collect(upTo: 1 << 20)).map { String(buffer: $0) } ?? ""
            printError("HTTP \(response.status.code): \(text)")
            throw ExitCode(1)
        }
        if let route = response.headers.first(name: "x-switchboard-route"),
           response.headers.first(name: "x-switchboard-action") != RouteAction.advise.rawValue {
            print("routed: \(response.headers.first(name: "x-switchboard-complexity") ?? "?") → \(route) on "
                  + (response.headers.first(name: "x-switchboard-model") ?? "?"))
        }
        if response.headers.first(name: "content-type")?.hasPrefix("application/json") == true {
            // Smart routing advised instead of streaming.
            let data = try await response.body.collect(upTo: 1 << 20)
            let advice = (try? JSONSerialization.jsonObject(with: Data(data.readableBytesView))) as? [String: Any] ?? [:]
            if json {
                print(String(buffer: data))
            } else {
                let rules = (advice["matchedRules"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
                print("advice: \(advice["complexity"] ?? "?") → \(advice["route"] ?? "?") (score \(advice["score"] ?? "?"); "
                      + "rules: \(rules.isEmpty ? "none" : rules.joined(separator: ", ")))")
                print(advice["message"] as? String ?? "")
            }
            return
        }

        var decoder = SSEDecoder()
        var previous = start
        var events = 0
        var firstText: Duration?
        var failed = false
        for try await chunk in response.body {
            let now = clock.now
            let wallNow = Date()
            var arrived: [ServerSentEvent] = []
            try decoder.feed(chunk.readableBytesView, comment: { text in
                print(String(format: "%8.3fs                        : ", seconds(now - start)) + text)
            }) { arrived.append($0) }
            for event in arrived {
                events += 1
                let fields = (try? JSONSerialization.jsonObject(with: Data(event.data.utf8))) as? [String: Any] ?? [:]
                let type = fields["type"] as? String ?? "?"
                let kind = StreamEvent.Kind(rawValue: type)
                if kind == .textChunk, firstText == nil { firstText = now - start }
                if kind == .error { failed = true }
                let latency = (fields["timestamp"] as? String).flatMap(Self.parseTimestamp).map { wallNow.timeIntervalSince($0) * 1000 }
                let latencyText = latency.map { String(format: "%.0f", max(0, $0)) } ?? "?"
                let prefix = String(format: "%8.3fs  Δ%6.0fms  lat ", seconds(now - start), seconds(now - previous) * 1000)
                    + pad(latencyText, 5, left: true) + "ms  " + pad(type, 16) + " "
                print(prefix + (json ? event.data : kind.map { Self.describe($0, fields) } ?? ""))
                previous = now
            }
        }
        let total = seconds(clock.now - start)
        print(String(format: "\n%d events in %.3f s, %.1f events/s, first text after %@", events, total,
                     total > 0 ? Double(events) / total : 0, firstText.map { String(format: "%.3f s", seconds($0)) } ?? "—"))
        if failed { throw ExitCode(1) }
    }

    static func describe(_ kind: StreamEvent.Kind, _ f: [String: Any]) -> String {
        func s(_ key: String) -> String { f[key].map { "\($0)" } ?? "" }
        switch kind {
        case .sessionStart: return s("sessionId")
        case .routing:
            let target = f["provider"] is String ? "\(s("provider"))/\(s("model"))" : s("message")
            return "\(s("complexity")) → \(s("route")) (score \(s("score"))): \(target)"
        case .iterationStart: return "#" + s("iteration")
        case .textChunk:
            let chunk = (f["chunk"] as? String ?? "").replacingOccurrences(of: "\n", with: "\\n")
            return "\"" + (chunk.count > 70 ? String(chunk.prefix(70)) + "…" : chunk) + "\""
        case .thinkingChunk:
            let chunk = (f["chunk"] as? String ?? "").replacingOccurrences(of: "\n", with: "\\n")
            return "(thinking) \"" + (chunk.count > 60 ? String(chunk.prefix(60)) + "…" : chunk) + "\""
        case .toolDetected: return "\(s("tool")) (\(s("toolUseId")))"
        case .toolsExecuting: return "\(s("count")): " + ((f["tools"] as? [String]) ?? []).joined(separator: ", ")
        case .toolProgress:
            let progress = f["progress"] as? [String: Any] ?? [:]
            var text = "\(s("tool")) \(s("status")) \(progress["current"].map { "\($0)" } ?? "?")/\(progress["total"].map { "\($0)" } ?? "?")"
            if let time = f["executionTime"] as? String { text += " in \(time)" }
            if let error = f["error"] as? String { text += " — \(error)" }
            return text
        case .complete:
            let usage = f["usage"] as? [String: Any] ?? [:]
            var text = "\(s("stopReason")) after \(s("iterations")) iteration(s), \(s("totalTimeMs")) ms, tokens in \(usage["inputTokens"] ?? "?") out \(usage["outputTokens"] ?? "?")"
            let cached = (usage["cacheReadTokens"] as? Int ?? 0, usage["cacheWriteTokens"] as? Int ?? 0)
            if cached != (0, 0) { text += " (cache read \(cached.0), written \(cached.1))" }
            if let cost = f["costUSD"] as? Double { text += ", $\(cost)" }
            return text
        case .error: return "\(s("code")): \(s("message")) (retryable: \(s("retryable")))"
        }
    }

    static func parseTimestamp(_ text: String) -> Date? {
        try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}

private func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
    let padding = String(repeating: " ", count: max(0, width - text.count))
    return left ? padding + text : text + padding
}

private func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
