import AnthropicMock
import AsyncHTTPClient
import ChatCore
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
@testable import Server

/// A stream as a frontend receives it: each event with the time it arrived, and the keepalives.
struct ReceivedStream: Sendable {
    struct Arrival: @unchecked Sendable {
        let at: ContinuousClock.Instant
        let id: String?
        let json: [String: Any]
        var type: String { json["type"] as? String ?? "?" }
    }

    var status: UInt = 0
    var headers: [(String, String)] = []
    var arrivals: [Arrival] = []
    /// The body, when the answer was not an event stream (a JSON error or advice).
    var bodyData: Data?
    var body: [String: Any]? { bodyData.flatMap { (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] } }
    var keepalives: [ContinuousClock.Instant] = []

    var types: [String] { arrivals.map(\.type) }
    func events(_ type: String) -> [[String: Any]] { arrivals.filter { $0.type == type }.map(\.json) }
    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
}

/// Posts a chat to the stream endpoint and reads the SSE as it arrives, until the server ends it or
/// `stopAfter` says to hang up (a client disconnect).
func streamChat(port: Int, body: String, path: String = "/mcp/chat/stream", headers: [(String, String)] = [],
                stopAfter: (@Sendable (ReceivedStream) -> Bool)? = nil) async throws -> ReceivedStream {
    try await receiveStream(try await postChat(port: port, body: body, path: path, headers: headers), stopAfter: stopAfter)
}

/// Posts a chat and returns the response once its head arrived, its body unread.
func postChat(port: Int, body: String, path: String = "/mcp/chat/stream", headers: [(String, String)] = [],
              timeout: Duration = .seconds(30)) async throws -> HTTPClientResponse {
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
    request.method = .POST
    request.headers.add(name: "content-type", value: "application/json")
    request.headers.add(contentsOf: headers)
    request.body = .bytes(ByteBuffer(string: body))
    return try await HTTPClient.shared.execute(request, timeout: .init(timeout))
}

/// Reads a response as a frontend would: its SSE as it arrives (until it ends or `stopAfter` says to hang up), or
/// its body when it is not an event stream.
func receiveStream(_ response: HTTPClientResponse, stopAfter: (@Sendable (ReceivedStream) -> Bool)? = nil) async throws
    -> ReceivedStream
{
    var received = ReceivedStream()
    received.status = response.status.code
    received.headers = response.headers.map { ($0.name, $0.value) }
    if !(received.header("content-type") ?? "").hasPrefix("text/event-stream") {
        let data = try await response.body.collect(upTo: 1 << 20)
        received.bodyData = Data(data.readableBytesView)
        return received
    }
    var decoder = SSEDecoder()
    let clock = ContinuousClock()
    for try await chunk in response.body {
        let now = clock.now
        var batch: [ReceivedStream.Arrival] = []
        try decoder.feed(chunk.readableBytesView, comment: { if $0 == "keepalive" { received.keepalives.append(now) } }) { event in
            let json = (try? JSONSerialization.jsonObject(with: Data(event.data.utf8))) as? [String: Any] ?? [:]
            batch.append(.init(at: now, id: event.id, json: json))
        }
        received.arrivals += batch
        if let stopAfter, stopAfter(received) { return received }
    }
    return received
}

func chatJSON(_ text: String, extra: String = "") -> String {
    #"{"messages":[{"role":"user","content":"\#(text)"}]\#(extra)}"#
}

/// A server configured against the mock upstream, with fast keepalives and retries for tests.
func streamingConfiguration(_ mock: MockAnthropic, keepalive: Duration = .seconds(15)) -> ServerConfiguration {
    var config = configuration(rules: nil)
    var anthropic = AnthropicConfigurationForTests.make(baseURL: mock.baseURL)
    anthropic.retry.baseDelay = .milliseconds(20)
    config.anthropic = anthropic
    config.keepaliveInterval = keepalive
    config.loop.toolTimeout = .seconds(5)
    return config
}

import Upstream

/// A live server streaming from `mock` with `rules` (YAML) and the test keys (`keysYAML`, web allowed 4 streams),
/// `configure` applied last.
func withKeyedServer(_ mock: MockAnthropic, rules yaml: String, tools: [any Tool] = [],
                     configure: (inout ServerConfiguration) -> Void = { _ in },
                     _ body: @Sendable (Int) async throws -> Void) async throws {
    let rules = try TemporaryRules(yaml)
    defer { rules.remove() }
    let keys = try TemporaryRules(keysYAML(webLimits: "{ concurrent_streams: 4 }"))
    defer { keys.remove() }
    var config = streamingConfiguration(mock)
    config.rulesPath = rules.path
    config.apiKeysPath = keys.path
    configure(&config)
    let app = try await buildApplication(configuration: config, tools: tools)
    try await app.test(.live) { client in try await body(try #require(client.port)) }
}

enum AnthropicConfigurationForTests {
    static let apiKey = "sk-ant-test-NEVER-LOGGED-42"
    static func make(baseURL: String) -> AnthropicConfiguration {
        AnthropicConfiguration(apiKey: apiKey, baseURL: baseURL)
    }
}

/// A tool for tests: answers after `delay`, fails on demand, and records starts, ends and cancellations.
final class ProbeTool: Tool, Sendable {
    let definition: ToolDefinition
    let delay: Duration
    let fails: Bool
    private struct Log {
        var started: [ContinuousClock.Instant] = []
        var finished: [ContinuousClock.Instant] = []
        var cancelled: [ContinuousClock.Instant] = []
        var inputs: [JSONValue] = []
    }

    private let log = Mutex(Log())

    init(name: String, delay: Duration = .zero, fails: Bool = false) {
        definition = ToolDefinition(name: name, description: "probe \(name)",
                                    inputSchema: .object(["type": .string("object")]))
        self.delay = delay
        self.fails = fails
    }

    var started: [ContinuousClock.Instant] { log.withLock { $0.started } }
    /// When each call finished its delay (not cancelled).
    var finished: [ContinuousClock.Instant] { log.withLock { $0.finished } }
    var cancelled: [ContinuousClock.Instant] { log.withLock { $0.cancelled } }
    var inputs: [JSONValue] { log.withLock { $0.inputs } }

    func execute(_ input: JSONValue) async throws -> ToolOutput {
        log.withLock { $0.started.append(ContinuousClock().now); $0.inputs.append(input) }
        do {
            try await Task.sleep(for: delay)
        } catch {
            log.withLock { $0.cancelled.append(ContinuousClock().now) }
            throw error
        }
        log.withLock { $0.finished.append(ContinuousClock().now) }
        if fails { throw ProbeFailure() }
        return ToolOutput(content: #"{"tool":"\#(definition.name)","rows":3}"#)
    }

    struct ProbeFailure: Error, CustomStringConvertible {
        var description: String { "probe failure" }
    }
}

/// An answer of three 8-byte chunks (2 tokens each by the cut-call estimate), then a 5 s pause a client that hangs
/// up does not wait for.
let threeChunksThenAPause = MockAnthropic.Reply.stream(
    [SSE.messageStart(), SSE.textStart(0), SSE.text(0, "abcdefgh"), SSE.text(0, "ijklmnop"), SSE.text(0, "qrstuvwx"), .pause(.seconds(5))]
        + SSE.textAnswer(["never read"]).dropFirst(2))
