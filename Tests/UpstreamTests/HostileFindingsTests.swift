import AnthropicMock
import ChatCore
import Foundation
import NIOCore
import NIOHTTP1
import TestSupport
import Testing
@testable import Upstream

/// Each answer a review found could crash, bloat or confuse the client, scripted byte for byte; each test fails
/// without its fix.
// Some bound a time (an endless body refused in seconds, not at the call's deadline): they take the quiet tests' turn.
@Suite("Hostile upstream: the findings, one by one", .cpuQuiet, .timeLimit(.minutes(3)))
struct HostileFindingsTests {
    private let request = ModelRequest(model: "m", system: "be brief", maxTokens: 64, messages: [ChatMessage(role: .user, content: .text("hi"))],
                                       tools: [])

    /// `wire`'s client on `service`, with timeouts long enough that a test ending fast shows the fix, not a timer.
    private func client(_ wire: Wire, _ service: HostileModelService, attempts: Int = 1) -> any LanguageModel & PooledClient {
        wire.client(service, firstByte: .seconds(20), idle: .seconds(20), overall: .seconds(40), attempts: attempts)
    }

    private func with(_ wire: Wire, attempts: Int = 1, _ body: (HostileModelService, any LanguageModel & PooledClient) async throws -> Void)
        async throws
    {
        let service = try await HostileModelService.start(clean: wire.clean.reply)
        let model = client(wire, service, attempts: attempts)
        do {
            try await body(service, model)
        } catch {
            try? await model.shutdown()
            try? await service.stop()
            throw error
        }
        try await model.shutdown()
        try await service.stop()
    }

    private func body(_ messages: [WireMessage]) -> [UInt8] { messages.flatMap(\.bytes) }

    @Test("retry hints past any duration (1e300, inf, 1e19 ms, 99999999999999999999s) are clamped, on both provider kinds: no trap, no wait",
          arguments: Wire.allCases)
    func retryHintsClamped(wire: Wire) async throws {
        let hints: [(String, String, String)] = [
            ("retry-after", "1e300", "{}"), ("retry-after", "inf", "{}"), ("retry-after-ms", "1e19", "{}"), ("retry-after", "-5", "{}"),
            ("x-none", "", #"{"error":{"message":"Please try again in 99999999999999999999s","type":"requests","code":"rate_limit_exceeded"}}"#),
        ]
        for (name, value, refusal) in hints {
            try await with(wire, attempts: 3) { service, model in
                service.enqueue(.http(status: 429, headers: [("content-type", "application/json"), (name, value)], body: Array(refusal.utf8)))
                let started = ContinuousClock.now
                // Too long a wait is not waited for (the 429 is the answer); one that is not a wait is ignored, and the
                // retry after the backoff finds the clean answer. Either way the call ends at once.
                do {
                    let turn = try await model.streamTurn(request) { _ in }
                    #expect(["-5", "inf"].contains(value), "\(name): \(value) was waited for")
                    #expect(turn.content.compactMap { $0["text"]?.stringValue }.joined() == wire.clean.text)
                } catch let error as StreamError {
                    #expect([.rateLimited, .upstreamError].contains(error.code), "\(name): \(value)")
                    #expect(!["-5", "inf"].contains(value), "\(name): \(value) should have been ignored")
                }
                // Far below the minute a hint clamped to the policy's longest wait would be, had it been waited for.
                #expect(ContinuousClock.now - started < .seconds(10), "\(name): \(value)")
            }
        }
        #expect(StreamingHTTP.retryAfter(["retry-after": "1e300"], atMost: .seconds(61)) == .seconds(61))
        #expect(StreamingHTTP.retryAfter(["retry-after": "inf"], atMost: .seconds(61)) == nil)
        #expect(StreamingHTTP.retryAfter(["retry-after-ms": "1e19"], atMost: .seconds(61)) == .seconds(61))
        #expect(StreamingHTTP.retryAfter(["retry-after": "-1"], atMost: .seconds(61)) == nil)
        #expect(StreamingHTTP.retryAfter(["retry-after": "2"], atMost: .seconds(61)) == .seconds(2))
        #expect(StreamingHTTP.retryHint(in: ByteBuffer(string: "try again in 99999999999999999999s"), atMost: .seconds(61)) == .seconds(61))
    }

    @Test("token counts are clamped where they are read: negative to 0, absurd to the ceiling, fractions down, strings ignored")
    func usageClamped() async throws {
        try await with(.anthropic) { service, model in
            var events = Wire.anthropic.fixtures[0]
            events[0].data = events[0].data.replacingOccurrences(of: #""input_tokens":25"#, with: #""input_tokens":-1"#)
                .replacingOccurrences(of: #""cache_read_input_tokens":0"#, with: #""cache_read_input_tokens":8.9e15"#)
                .replacingOccurrences(of: #""cache_creation_input_tokens":0"#, with: #""cache_creation_input_tokens":"12""#)
            events[events.count - 2].data = events[events.count - 2].data.replacingOccurrences(of: #""output_tokens":15"#, with: #""output_tokens":-5"#)
            service.enqueue(.http(body: body(events)))
            let usage = try await model.streamTurn(request) { _ in }.usage
            #expect(usage == Usage(inputTokens: 0, outputTokens: 0, cacheReadTokens: Usage.maxTokensPerCall, cacheWriteTokens: 0))
        }
        try await with(.openai) { service, model in
            var events = Wire.openAIText
            events[4].data = #"{"choices":[],"usage":{"prompt_tokens":12.7,"completion_tokens":-3,"prompt_tokens_details":{"cached_tokens":1e300}}}"#
            service.enqueue(.http(body: body(events)))
            let usage = try await model.streamTurn(request) { _ in }.usage
            #expect(usage == Usage(inputTokens: 0, outputTokens: 0, cacheReadTokens: 12), "the cached part is at most the prompt")
        }
        #expect(Usage.tokenCount(.number(-1)) == 0 && Usage.tokenCount(.number(1e300)) == Usage.maxTokensPerCall)
        #expect(Usage.tokenCount(.number(2.9)) == 2 && Usage.tokenCount(.string("5")) == nil && Usage.tokenCount(nil) == nil)
    }

    @Test("every byte a turn keeps counts against its caps: signatures, citations, new blocks (Anthropic), tool-call slots and names (OpenAI)",
          arguments: ["signature", "citation", "blocks", "slots", "names"])
    func turnCaps(kind: String) async throws {
        let wire: Wire = ["slots", "names"].contains(kind) ? .openai : .anthropic
        try await with(wire) { service, model in
            let start = wire.fixtures[0].prefix(2)
            var events = Array(start)
            let piece = String(repeating: "S", count: 1_000)
            for n in 0..<3_000 {
                let event: WireMessage = switch kind {
                case "signature": WireMessage(event: "content_block_delta", data: #"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"\#(piece)"}}"#)
                case "citation": WireMessage(event: "content_block_delta", data: #"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"cited_text":"\#(piece)"}}}"#)
                case "blocks": WireMessage(event: "content_block_start", data: #"{"type":"content_block_start","index":\#(n + 1),"content_block":{"type":"text","text":""}}"#)
                case "slots": WireMessage(data: #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":\#(n),"id":"call_\#(n)","function":{"name":"f","arguments":"{}"}}]}}]}"#)
                default: WireMessage(data: #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_0","function":{"name":"\#(piece)\#(n)"}}]}}]}"#)
                }
                events.append(event)
            }
            events += wire.fixtures[0].suffix(2)
            service.enqueue(.http(body: body(events)))
            let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
            #expect(error?.code == .upstreamProtocolError, "\(String(describing: error))")
            #expect(error?.retryable == false)
        }
    }

    @Test("bytes after an answer's end (the start of a response nobody asked for): the connection is closed, and the next call reads its own answer",
          arguments: ["HTTP/1.1 200 OK\r\nContent-Le", "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", "x"])
    func bytesAfterEnd(junk: String) async throws {
        try await with(.anthropic) { service, model in
            var reply = Wire.anthropic.clean.reply
            reply.pieces.append(.bytes(Array(junk.utf8)))
            service.enqueue(reply)
            let first = try await model.streamTurn(request) { _ in }
            #expect(first.content.compactMap { $0["text"]?.stringValue }.joined() == Wire.anthropic.clean.text)
            try await Task.sleep(for: .milliseconds(50))
            let second = try await model.streamTurn(request) { _ in }
            #expect(second.content.compactMap { $0["text"]?.stringValue }.joined() == Wire.anthropic.clean.text)
            #expect(service.requestConnections == [0, 1], "the second call on a new connection")
        }
        // And a clean answer's connection is still reused.
        try await with(.anthropic) { service, model in
            for _ in 0..<3 {
                _ = try await model.streamTurn(request) { _ in }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(service.requestConnections == [0, 0, 0])
        }
    }

    @Test("a refusal whose body never ends: refused once 64 KiB is read, not held to the call's deadline", arguments: Wire.allCases)
    func endlessRefusal(wire: Wire) async throws {
        try await with(wire) { service, model in
            var reply = HostileModelService.Reply([.bytes(Array("HTTP/1.1 500 Internal\r\ntransfer-encoding: chunked\r\n\r\n".utf8))], then: .hang)
            for _ in 0..<12 {
                reply.pieces.append(.bytes(Array("2000\r\n".utf8) + Array(repeating: UInt8(ascii: "e"), count: 0x2000) + Array("\r\n".utf8)))
                reply.pieces.append(.pause(.milliseconds(10)))
            }
            // Then it drips on, slower than the idle timeout would notice.
            for _ in 0..<200 { reply.pieces += [.bytes(Array("1\r\ne\r\n".utf8)), .pause(.milliseconds(100))] }
            service.enqueue(reply)
            let started = ContinuousClock.now
            let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
            #expect(error?.code == .upstreamError)
            #expect(ContinuousClock.now - started < .seconds(3))
        }
    }

    @Test("an upstream killed in the middle of its answer is upstream_stream_ended, not a protocol error", arguments: Wire.allCases)
    func killedMidStream(wire: Wire) async throws {
        try await with(wire) { service, model in
            guard case .bytes(let whole) = wire.clean.reply.pieces[0] else { return }
            // The head and part of the first chunk, then the connection closes.
            service.enqueue(HostileModelService.Reply([.bytes(Array(whole.prefix(whole.count / 2)))], then: .close))
            let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
            #expect(error?.code == .upstreamStreamEnded, "\(String(describing: error))")
        }
    }

    @Test("a refusal's request id reaches the client when it is a plain id; one that is not stays out, and so do the provider's words")
    func requestIds() async throws {
        let refusal = #"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long for ops@corp.example at db.internal.example"}}"#
        for (id, shown) in [("req_011CV8z-abc.1", true), ("evil http://10.0.0.9/ text", false), (String(repeating: "a", count: 300), false)] {
            try await with(.anthropic) { service, model in
                service.enqueue(.http(status: 400, headers: [("content-type", "application/json"), ("request-id", id)], body: Array(refusal.utf8)))
                let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
                let message = error?.message ?? ""
                #expect(message.contains("(request \(id))") == shown, "\(message)")
                #expect(message.contains("the conversation is longer than the model accepts"))
                #expect(!message.contains("10.0.0.9") && !message.contains("ops@") && !message.contains("internal"))
            }
        }
    }
}

@Suite("Redaction of a provider's words for the log")
struct UpstreamRedactionTests {
    @Test("host names, e-mail addresses, AWS key ids, password=…, file paths, URLs, IPs and keys are taken out", arguments: [
        ("failed at db.internal.example:5432", "db.internal.example"), ("write to ops@example.com", "ops@example.com"),
        ("key AKIAIOSFODNN7EXAMPLE leaked", "AKIAIOSFODNN7EXAMPLE"), ("password=hunter2&x", "hunter2"), ("secret: 's3cr3t'", "s3cr3t"),
        ("open /etc/switchboard/keys.yaml failed", "/etc/switchboard"), (#"C:\Users\ops\key.txt"#, #"C:\Users"#),
        ("see http://billing.internal:8080/v1", "billing.internal"), ("from 10.20.30.40", "10.20.30.40"), ("with sk-live-abcdef0123", "sk-live"),
        ("Bearer tok_123456789", "tok_123456789"), ("api_key=abc123", "abc123"),
    ])
    func redacted(text: String, secret: String) {
        let redacted = Redaction.upstreamText(text)
        #expect(!redacted.contains(secret), "\(redacted)")
    }

    @Test("ordinary words survive: a model's reason stays readable in the log")
    func readable() {
        #expect(Redaction.upstreamText("prompt is too long: 210000 tokens > 200000 maximum") == "prompt is too long: 210000 tokens > 200000 maximum")
        #expect(Redaction.upstreamText("Overloaded") == "Overloaded")
    }

    @Test("a request id is shown only when it is a plain id")
    func requestId() {
        #expect(Redaction.requestId("req_011CV8zabc") == "req_011CV8zabc")
        #expect(Redaction.requestId("a b") == nil && Redaction.requestId("") == nil && Redaction.requestId(nil) == nil)
        #expect(Redaction.requestId(String(repeating: "x", count: 129)) == nil && Redaction.requestId("ünicode") == nil)
    }

    @Test("only traceparent travels to a provider: the caller's tracestate is its vendors' data")
    func tracestateStays() {
        var headers = HTTPHeaders()
        HeadersInjector().inject("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", forKey: "traceparent", into: &headers)
        HeadersInjector().inject("vendor=secret-value", forKey: "tracestate", into: &headers)
        #expect(headers.map(\.name) == ["traceparent"])
    }
}
