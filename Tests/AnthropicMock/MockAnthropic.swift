import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A local server speaking the Anthropic Messages streaming format, scripted per test, so the real client
/// code runs against real HTTP. Each request to `POST /v1/messages` takes the next scripted reply.
public final class MockAnthropic: Sendable {
    /// One reply.
    public enum Reply: Sendable {
        /// A non-streaming answer, such as an error envelope.
        case status(Int, headers: [String: String] = [:], body: String)
        /// `200 text/event-stream`, written piece by piece.
        case stream([Piece])
        /// Wait before sending the head, then reply.
        indirect case delayed(Duration, Reply)
    }

    /// A piece of a streamed reply.
    public enum Piece: Sendable {
        case send(String)
        case pause(Duration)
    }

    /// A request as the mock received it.
    public struct Received: @unchecked Sendable {
        public let headers: [String: String]
        public let body: [String: Any]

        public init(headers: [String: String], body: [String: Any]) {
            self.headers = headers
            self.body = body
        }
    }

    private struct State: @unchecked Sendable {
        var replies: [Reply] = []
        var received: [Received] = []
        var disconnects: [ContinuousClock.Instant] = []
        var answered: [ContinuousClock.Instant] = []
        var sent: [ContinuousClock.Instant] = []
        var finished = 0
        var port = 0
    }

    private let state = Mutex(State())

    public var port: Int { state.withLock { $0.port } }
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    public var received: [Received] { state.withLock { $0.received } }
    /// When the client went away in the middle of a streamed reply.
    public var disconnects: [ContinuousClock.Instant] { state.withLock { $0.disconnects } }
    /// When each streamed piece (`.send`) was about to be written, across all replies, in order.
    public var sent: [ContinuousClock.Instant] { state.withLock { $0.sent } }
    /// When each reply began, after its `delayed` wait: the first byte the client could see.
    public var answered: [ContinuousClock.Instant] { state.withLock { $0.answered } }
    /// Streamed replies written to their end.
    public var finished: Int { state.withLock { $0.finished } }

    public func enqueue(_ replies: Reply...) {
        state.withLock { $0.replies.append(contentsOf: replies) }
    }

    /// Runs the mock on a free loopback port for the duration of `body`.
    public static func run<T: Sendable>(_ body: @Sendable (MockAnthropic) async throws -> T) async throws -> T {
        let mock = MockAnthropic()
        let router = Router()
        router.post("/v1/messages") { request, _ in
            try await mock.respond(to: request)
        }
        // The same scripted replies for OpenAI-compatible clients (their chunks built with `OpenAIChunk`).
        router.post("/v1/chat/completions") { request, _ in
            try await mock.respond(to: request)
        }
        var logger = Logger(label: "mock-anthropic")
        logger.logLevel = .critical
        let (ready, readyContinuation) = AsyncStream<Void>.makeStream()
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                mock.state.withLock { $0.port = channel.localAddress?.port ?? 0 }
                readyContinuation.yield()
            },
            logger: logger
        )
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await app.runService(gracefulShutdownSignals: [])
                return nil
            }
            for await _ in ready { break }
            let result = try await body(mock)
            group.cancelAll()
            return result
        }
    }

    private func respond(to request: Request) async throws -> Response {
        var request = request
        let bytes = try await request.collectBody(upTo: 8 << 20)
        let json = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any] ?? [:]
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let reply: Reply? = state.withLock { state in
            state.received.append(Received(headers: headers, body: json))
            return state.replies.isEmpty ? nil : state.replies.removeFirst()
        }
        guard var reply else {
            return Response(status: .internalServerError,
                            body: .init(byteBuffer: ByteBuffer(string: #"{"type":"error","error":{"type":"api_error","message":"no scripted reply"}}"#)))
        }
        while case .delayed(let delay, let inner) = reply {
            try await Task.sleep(for: delay)
            reply = inner
        }
        state.withLock { $0.answered.append(ContinuousClock().now) }
        switch reply {
        case .status(let code, let extra, let body):
            var fields = HTTPFields()
            fields[.contentType] = "application/json"
            fields[HTTPField.Name("request-id")!] = "req_mock"
            for (name, value) in extra { fields[HTTPField.Name(name)!] = value }
            return Response(status: .init(code: code), headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
        case .stream(let pieces):
            var fields = HTTPFields()
            fields[.contentType] = "text/event-stream; charset=utf-8"
            fields[.cacheControl] = "no-cache"
            fields[HTTPField.Name("request-id")!] = "req_mock"
            // Watching for the client's hang-up ends the connection's inbound side, so the connection closes after
            // this response: say so, as a server must, or a client could send its next request on it and fail.
            fields[.connection] = "close"
            return Response(status: .ok, headers: fields, body: ResponseBody { [request] writer in
                do {
                    try await request.body.consumeWithCancellationOnInboundClose { _ in
                        for piece in pieces {
                            switch piece {
                            case .send(let text):
                                // Noted before the write: the piece cannot reach anyone earlier than this.
                                self.state.withLock { $0.sent.append(ContinuousClock().now) }
                                try await writer.write(ByteBuffer(string: text))
                            case .pause(let duration): try await Task.sleep(for: duration)
                            }
                        }
                    }
                    try await writer.finish(nil)
                    self.state.withLock { $0.finished += 1 }
                } catch {
                    self.state.withLock { $0.disconnects.append(ContinuousClock().now) }
                }
            })
        case .delayed:
            fatalError("unreachable")
        }
    }
}

/// Builders for Anthropic's documented stream events.
public enum SSE {
    public static func event(_ name: String, _ json: String) -> MockAnthropic.Piece {
        .send("event: \(name)\ndata: \(json)\n\n")
    }

    public static func messageStart(inputTokens: Int = 25) -> MockAnthropic.Piece {
        event("message_start", #"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":\#(inputTokens),"output_tokens":1}}}"#)
    }

    public static func textStart(_ index: Int) -> MockAnthropic.Piece {
        event("content_block_start", #"{"type":"content_block_start","index":\#(index),"content_block":{"type":"text","text":""}}"#)
    }

    public static func text(_ index: Int, _ text: String) -> MockAnthropic.Piece {
        let escaped = String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
        return event("content_block_delta", #"{"type":"content_block_delta","index":\#(index),"delta":{"type":"text_delta","text":\#(escaped)}}"#)
    }

    public static func toolStart(_ index: Int, id: String, name: String) -> MockAnthropic.Piece {
        event("content_block_start", #"{"type":"content_block_start","index":\#(index),"content_block":{"type":"tool_use","id":"\#(id)","name":"\#(name)","input":{}}}"#)
    }

    public static func inputJSON(_ index: Int, _ fragment: String) -> MockAnthropic.Piece {
        let escaped = String(decoding: try! JSONEncoder().encode(fragment), as: UTF8.self)
        return event("content_block_delta", #"{"type":"content_block_delta","index":\#(index),"delta":{"type":"input_json_delta","partial_json":\#(escaped)}}"#)
    }

    public static func thinking(_ index: Int, thinking: String, signature: String) -> [MockAnthropic.Piece] {
        [
            event("content_block_start", #"{"type":"content_block_start","index":\#(index),"content_block":{"type":"thinking","thinking":"","signature":""}}"#),
            event("content_block_delta", #"{"type":"content_block_delta","index":\#(index),"delta":{"type":"thinking_delta","thinking":"\#(thinking)"}}"#),
            event("content_block_delta", #"{"type":"content_block_delta","index":\#(index),"delta":{"type":"signature_delta","signature":"\#(signature)"}}"#),
            stop(index),
        ]
    }

    public static func stop(_ index: Int) -> MockAnthropic.Piece {
        event("content_block_stop", #"{"type":"content_block_stop","index":\#(index)}"#)
    }

    public static func messageDelta(_ stopReason: String, outputTokens: Int = 15) -> MockAnthropic.Piece {
        event("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"\#(stopReason)","stop_sequence":null},"usage":{"output_tokens":\#(outputTokens)}}"#)
    }

    public static let messageStop = event("message_stop", #"{"type":"message_stop"}"#)
    public static let ping = event("ping", #"{"type": "ping"}"#)

    public static func error(_ type: String, _ message: String) -> MockAnthropic.Piece {
        event("error", #"{"type":"error","error":{"type":"\#(type)","message":"\#(message)"}}"#)
    }

    /// A whole text answer in the given chunks.
    public static func textAnswer(_ chunks: [String], stopReason: String = "end_turn") -> [MockAnthropic.Piece] {
        [messageStart(), textStart(0)] + chunks.map { text(0, $0) } + [stop(0), messageDelta(stopReason), messageStop]
    }

    /// `pieces` with a pause after every `count` of them: a mock's writes go into an unbounded buffer, so an upstream
    /// that must still be sending when something happens (to see its connection closed) has to take its time.
    public static func paced(_ pieces: [MockAnthropic.Piece], pauseEvery count: Int, for pause: Duration) -> [MockAnthropic.Piece] {
        pieces.enumerated().flatMap { index, piece in index % count == count - 1 ? [piece, .pause(pause)] : [piece] }
    }

    /// A turn that says `text` and then calls tools, each with its input split in fragments.
    public static func toolTurn(text intro: String?, tools: [(id: String, name: String, fragments: [String])]) -> [MockAnthropic.Piece] {
        var pieces: [MockAnthropic.Piece] = [messageStart()]
        var index = 0
        if let intro {
            pieces += [textStart(0), text(0, intro), stop(0)]
            index = 1
        }
        for tool in tools {
            pieces.append(toolStart(index, id: tool.id, name: tool.name))
            pieces.append(inputJSON(index, ""))
            pieces += tool.fragments.map { inputJSON(index, $0) }
            pieces.append(stop(index))
            index += 1
        }
        pieces += [messageDelta("tool_use"), messageStop]
        return pieces
    }

    public static func errorBody(_ type: String, _ message: String) -> String {
        #"{"type":"error","error":{"type":"\#(type)","message":"\#(message)"},"request_id":"req_mock"}"#
    }
}

/// Builders for OpenAI-compatible Chat Completions chunks (`data:` lines only, then `[DONE]`).
public enum OpenAIChunk {
    /// A chunk whose one choice carries `delta` (JSON) and `finish` as its finish reason.
    public static func delta(_ delta: String, finish: String? = nil) -> MockAnthropic.Piece {
        data(#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":\#(delta),"finish_reason":\#(finish.map { "\"\($0)\"" } ?? "null")}]}"#)
    }

    public static func data(_ json: String) -> MockAnthropic.Piece {
        .send("data: \(json)\n\n")
    }

    public static func usage(prompt: Int, completion: Int) -> MockAnthropic.Piece {
        data(#"{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":\#(prompt),"completion_tokens":\#(completion),"total_tokens":\#(prompt + completion)}}"#)
    }

    public static let done = MockAnthropic.Piece.send("data: [DONE]\n\n")

    /// A whole text answer: role, the chunks, the finish, usage, `[DONE]`.
    public static func textAnswer(_ chunks: [String]) -> [MockAnthropic.Piece] {
        [delta(#"{"role":"assistant","content":""}"#)] + chunks.map { delta(#"{"content":\#(jsonString($0))}"#) }
            + [delta("{}", finish: "stop"), usage(prompt: 12, completion: 5), done]
    }

    static func jsonString(_ text: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: [text], options: [.fragmentsAllowed]), as: UTF8.self)
            .dropFirst().dropLast().description
    }
}
