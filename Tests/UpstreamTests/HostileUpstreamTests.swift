import AnthropicMock
import ChatCore
import Foundation
import Synchronization
import TestSupport
import Testing
@testable import Upstream

// The hostile-upstream suite: a model service of our own on loopback (`HostileModelService`) answers with real
// answers of both wire formats mutated field by field and byte by byte, and after every mutated answer a clean
// call on the same client must read its own answer whole. For each mutation: the process stays up (a trap would
// end the test run), the call ends with a whole turn or a `StreamError` within its deadline, no usage count leaves
// 0...Usage.maxTokensPerCall, what a turn keeps stays within its caps, and no bytes of one answer reach the next.
//
// SWITCHBOARD_FUZZ_SEED (a number, or `random`) and SWITCHBOARD_FUZZ_CASES replay or widen a run; every issue names
// its seed and case.

/// One SSE message of a fixture.
struct WireMessage {
    var event: String?
    var data: String

    var bytes: [UInt8] {
        Array(((event.map { "event: \($0)\n" } ?? "") + "data: \(data)\n\n").utf8)
    }

    static func parse(_ text: String) -> [WireMessage] {
        text.components(separatedBy: "\n\n").compactMap { block in
            var event: String?
            var data: String?
            for line in block.split(separator: "\n") {
                if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { data = String(line.dropFirst(6)) }
            }
            return data.map { WireMessage(event: event, data: $0) }
        }
    }
}

enum Wire: String, CaseIterable, Sendable {
    case anthropic, openai

    /// Real answers to mutate: text, thinking with a tool call, a tool call cut by the token limit.
    var fixtures: [[WireMessage]] {
        switch self {
        case .anthropic:
            ["text.sse", "thinking_tool_use.sse", "max_tokens_cut_tool.sse"].map { name in
                let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)")
                return WireMessage.parse((try? String(contentsOf: url, encoding: .utf8)) ?? "")
            }
        case .openai:
            [Self.openAIText, Self.openAITools]
        }
    }

    static let openAIText: [WireMessage] = [
        #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello, "},"finish_reason":null}]}"#,
        #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"world"},"finish_reason":null}]}"#,
        #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":4}}}"#,
        "[DONE]",
    ].map { WireMessage(data: $0) }

    static let openAITools: [WireMessage] = [
        #"{"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"Looking up."},"finish_reason":null}]}"#,
        #"{"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_employees","arguments":""}}]},"finish_reason":null}]}"#,
        #"{"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}"#,
        #"{"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Berlin\"}"}}]},"finish_reason":null}]}"#,
        #"{"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"count_employees","arguments":"{}"}}]},"finish_reason":null}]}"#,
        #"{"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":40,"completion_tokens":22,"total_tokens":62}}"#,
        "[DONE]",
    ].map { WireMessage(data: $0) }

    /// The clean answer every check call gets, and its text.
    var clean: (reply: HostileModelService.Reply, text: String) {
        switch self {
        case .anthropic: (.http(body: fixtures[0].flatMap(\.bytes)), "Hello, São Paulo 😀 ello friend!\nBye.")
        case .openai: (.http(body: Self.openAIText.flatMap(\.bytes)), "Hello, world")
        }
    }

    /// A client of this wire's kind on `service`: by default with timeouts short enough for thousands of mutations
    /// a minute (a body that never ends costs 200 ms), and one retry after a millisecond.
    func client(_ service: HostileModelService, firstByte: Duration = .milliseconds(250), idle: Duration = .milliseconds(200),
                overall: Duration = .seconds(4), attempts: Int = 2) -> any LanguageModel & PooledClient {
        var timeouts = UpstreamTimeouts()
        timeouts.connect = .seconds(2)
        timeouts.firstByte = firstByte
        timeouts.idle = idle
        timeouts.overall = overall
        var retry = RetryPolicy()
        retry.maxAttempts = attempts
        retry.baseDelay = .milliseconds(1)
        retry.maxDelay = .milliseconds(2)
        retry.maxRetryAfter = .milliseconds(20)
        switch self {
        case .anthropic:
            var configuration = AnthropicConfiguration(apiKey: "sk-ant-hostile", baseURL: service.baseURL)
            configuration.timeouts = timeouts
            configuration.retry = retry
            return AnthropicClient(configuration: configuration)
        case .openai:
            var configuration = OpenAIConfiguration(baseURL: service.baseURL + "/v1", apiKey: "sk-hostile")
            configuration.timeouts = timeouts
            configuration.retry = retry
            return OpenAIClient(configuration: configuration)
        }
    }
}

private let hostileRequest = ModelRequest(model: "m", system: "be brief", maxTokens: 64,
                                          messages: [ChatMessage(role: .user, content: .text("hi"))], tools: [])

/// The values a field is given: negative, huge, fractional, not finite, of the wrong type, empty, long.
private let hostileValues: [String] = [
    "-1", "-5", "-3", "-1e300", "1e300", "8.9e15", "9.2e18", "1e19", "0.5", "2.7", "-0.0", "1.7976931348623157e308", "1e999", "-1e999",
    #""NaN""#, #""inf""#, #""-5""#, #""1e300""#, "true", "false", "null", "[]", "{}", #""""#, #""x""#, "[1,2,3]", #"{"a":{"b":[]}}"#,
    "12345678901234567890123", "-9223372036854775809", #"""# + String(repeating: "y", count: 70_000) + #"""#,
]

/// Mutates the fixtures with a seeded generator; each case is a reply and what it did, for the issue's text.
struct Mutator {
    var random: SplitMix64
    let wire: Wire

    mutating func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
    mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
    mutating func number(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(random.next() % UInt64(range.count)) }

    mutating func next() -> (String, HostileModelService.Reply) {
        var events = pick(wire.fixtures)
        var what: [String] = []
        // One to three changes to the events, then the framing.
        for _ in 0..<number(1...3) {
            what.append(mutate(&events))
        }
        var body = events.flatMap(\.bytes)
        let roll = random.next() % 100
        switch roll {
        case 0..<55:
            return (what.joined(separator: "; "), .http(body: body))
        case 55..<60:
            let cut = number(0...max(0, body.count - 1))
            return (what.joined(separator: "; ") + "; cut at byte \(cut), closed", .http(body: Array(body.prefix(cut)), framing: .untilClose))
        case 60..<64:
            let junk = pick(["HTTP/1.1 200 OK\r\nContent-Le", "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", "garbage\r\n", "\r\n\r\n", "0\r\n\r\n"])
            // In the same write as the answer, so it arrives in the read that ends it. (Bytes a server sends later,
            // once the next call's request is written, are that call's answer, as for any HTTP/1.1 client.)
            var reply = HostileModelService.Reply.http(body: body)
            if case .bytes(let bytes) = reply.pieces[0] { reply.pieces[0] = .bytes(bytes + Array(junk.utf8)) }
            return (what.joined(separator: "; ") + "; then \(junk.debugDescription) after the end", reply)
        case 64..<68:
            return (what.joined(separator: "; ") + "; until close", .http(body: body, framing: .untilClose))
        case 68..<71:
            return (what.joined(separator: "; ") + "; with a length", .http(body: body, framing: .length))
        case 71..<80:
            return refusal()
        case 80..<84:
            // Dripped: in pieces of a few bytes.
            var pieces: [HostileModelService.Reply.Piece] = []
            var reply = HostileModelService.Reply.http(body: body)
            guard case .bytes(let all) = reply.pieces[0] else { return ("", reply) }
            var rest = all[...]
            while !rest.isEmpty {
                let size = number(1...400)
                pieces.append(.bytes(Array(rest.prefix(size))))
                rest = rest.dropFirst(size)
                if chance(3) { pieces.append(.pause(.milliseconds(number(1...5)))) }
            }
            reply.pieces = pieces
            return (what.joined(separator: "; ") + "; dripped", reply)
        case 84..<88:
            return (what.joined(separator: "; ") + "; flood", flood())
        case 88..<92:
            return http()
        default:
            if chance(50) { body = Array(body.shuffled(using: &random).prefix(number(0...200))) }
            return (what.joined(separator: "; ") + "; bytes shuffled", .http(body: body))
        }
    }

    /// One change to the events: a field's value, a field removed or renamed, an event repeated, dropped, moved,
    /// unknown, unreadable.
    private mutating func mutate(_ events: inout [WireMessage]) -> String {
        guard !events.isEmpty else { return "no events" }
        let index = number(0...(events.count - 1))
        switch random.next() % 100 {
        case 0..<55:
            guard let data = events[index].data.data(using: .utf8),
                  let json = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else { return "kept \(index)" }
            var paths: [[PathStep]] = []
            collect(json, path: [], into: &paths)
            guard !paths.isEmpty else { return "kept \(index)" }
            let path = pick(paths)
            let value = pick(hostileValues)
            let operation = random.next() % 10
            let marker = "__HOSTILE__"
            let changed = apply(json, path: path[...], operation: operation, marker: marker)
            guard let encoded = try? JSONSerialization.data(withJSONObject: changed, options: [.fragmentsAllowed]) else { return "kept \(index)" }
            events[index].data = String(decoding: encoded, as: UTF8.self).replacingOccurrences(of: "\"\(marker)\"", with: value)
            let name = path.map(\.description).joined(separator: ".")
            return operation < 7 ? "event \(index) \(name) = \(value.prefix(40))" : operation < 9 ? "event \(index) \(name) removed" : "event \(index) \(name) renamed"
        case 55..<65:
            events.insert(events[index], at: index)
            return "event \(index) twice"
        case 65..<72:
            events.remove(at: index)
            return "event \(index) dropped"
        case 72..<80:
            let other = number(0...(events.count - 1))
            events.swapAt(index, other)
            return "events \(index) and \(other) swapped"
        case 80..<86:
            let unknown = pick([
                WireMessage(event: "mystery", data: #"{"type":"mystery","index":0}"#),
                WireMessage(event: "content_block_start", data: #"{"type":"content_block_start","index":7,"content_block":{"type":"hologram","x":1}}"#),
                WireMessage(event: "content_block_delta", data: #"{"type":"content_block_delta","index":0,"delta":{"type":"telepathy_delta","t":"?"}}"#),
                WireMessage(event: "content_block_delta", data: #"{"type":"content_block_delta","index":99,"delta":{"type":"text_delta","text":"orphan"}}"#),
                WireMessage(data: #"{"choices":[{"index":3,"delta":{"content":"other choice"}}]}"#),
                WireMessage(data: #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":-4,"id":"","function":{"name":"","arguments":7}}]}}]}"#),
                WireMessage(event: "error", data: #"{"type":"error","error":{"type":"overloaded_error","message":"busy at 10.0.0.1"}}"#),
                WireMessage(data: #"{"error":{"message":"bad things at db.internal.example","type":"server_error","code":500}}"#),
            ])
            events.insert(unknown, at: index)
            return "unknown event at \(index)"
        case 86..<93:
            events[index].data = pick(["{not json", "", "[", #"{"type":"#, "\u{1}\u{2}", "null", "\"just a string\"", "1e999"])
            return "event \(index) unreadable"
        default:
            events[index].event = pick([nil, "message_stop", "ping", "error", "content_block_stop", ""])
            return "event \(index) renamed"
        }
    }

    /// Many of one delta: signatures, citations, new blocks, text, tool calls, names.
    private mutating func flood() -> HostileModelService.Reply {
        let count = number(2_000...12_000)
        let start = wire.fixtures[0].prefix(2).flatMap(\.bytes)
        var body = start
        let big = String(repeating: "S", count: number(100...900))
        for n in 0..<count {
            let event: WireMessage = switch (wire, n % 4) {
            case (.anthropic, 0): WireMessage(event: "content_block_delta", data: #"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"\#(big)"}}"#)
            case (.anthropic, 1): WireMessage(event: "content_block_delta", data: #"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"cited_text":"\#(big)"}}}"#)
            case (.anthropic, 2): WireMessage(event: "content_block_start", data: #"{"type":"content_block_start","index":\#(n + 10),"content_block":{"type":"text","text":""}}"#)
            case (.anthropic, _): WireMessage(event: "content_block_delta", data: #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\#(big)"}}"#)
            case (.openai, 0): WireMessage(data: #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":\#(n),"id":"call_\#(n)","function":{"name":"f","arguments":"{}"}}]}}]}"#)
            case (.openai, 1): WireMessage(data: #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"\#(big)"}}]}}]}"#)
            case (.openai, 2): WireMessage(data: #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\#(big)"}}]}}]}"#)
            case (.openai, _): WireMessage(data: #"{"choices":[{"index":0,"delta":{"content":"\#(big)"}}]}"#)
            }
            body += event.bytes
        }
        body += wire.fixtures[0].suffix(2).flatMap(\.bytes)
        return .http(body: body)
    }

    /// A refusal: a status with a body, hostile retry hints, a body past 64 KiB, or one that never ends.
    private mutating func refusal() -> (String, HostileModelService.Reply) {
        let status = pick([400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 529, 999, 100])
        let hint = pick(["1e300", "inf", "-1", "NaN", "5", "99999999999999999999", "Wed, 21 Oct 2015 07:28:00 GMT", "", "0.0001"])
        let headerName = pick(["retry-after", "retry-after-ms", "x-should-retry", "request-id", "x-request-id"])
        let bodies = [
            #"{"type":"error","error":{"type":"rate_limit_error","message":"try again in 99999999999999999999s at http://10.0.0.8/ for ops@example.com"}}"#,
            #"{"error":{"message":"Please try again in 1e300ms","type":"requests","code":"rate_limit_exceeded"}}"#,
            #"{"error":{"message":"password=hunter2 AKIAIOSFODNN7EXAMPLE /etc/secret/key","type":"invalid_request_error","code":null}}"#,
            "not json at all", "", #"{"error":7}"#, #"{"error":{"type":[],"message":{}}}"#,
        ]
        var body = Array(pick(bodies).utf8)
        if chance(15) { body += Array(repeating: UInt8(ascii: "z"), count: 70_000) }
        let headers = [("content-type", "application/json"), (headerName, hint)]
        if chance(10) {
            // A refusal whose body never ends.
            var reply = HostileModelService.Reply([.bytes(Array("HTTP/1.1 \(status) Status\r\ntransfer-encoding: chunked\r\n\r\n".utf8))], then: .hang)
            for _ in 0..<number(10...40) {
                reply.pieces.append(.bytes(Array("2000\r\n".utf8) + Array(repeating: UInt8(ascii: "e"), count: 0x2000) + Array("\r\n".utf8)))
            }
            return ("\(status) with an endless body", reply)
        }
        return ("\(status) \(headerName): \(hint)", .http(status: status, headers: headers, body: body, framing: chance(50) ? .length : .chunked))
    }

    /// The HTTP layer itself: a bad status line, an oversized header, a wrong length, a bad chunk size, 1xx first.
    private mutating func http() -> (String, HostileModelService.Reply) {
        let body = wire.clean.reply
        guard case .bytes(let clean) = body.pieces[0] else { return ("", body) }
        let text = String(decoding: clean, as: UTF8.self)
        switch random.next() % 7 {
        case 0: return ("bad status line", HostileModelService.Reply([.bytes(Array(("HTTP/1.1 abc\r\n" + text).utf8))], then: .close))
        case 1:
            let header = "x-big: " + String(repeating: "h", count: number(10_000...200_000)) + "\r\n"
            return ("oversized header", HostileModelService.Reply([.bytes(Array(text.replacingOccurrences(of: "\r\n\r\n", with: "\r\n" + header + "\r\n").utf8))]))
        case 2:
            let events = Array(wire.fixtures[0].flatMap(\.bytes))
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: \(events.count + number(1...100))\r\n\r\n"
            return ("length longer than the body", HostileModelService.Reply([.bytes(Array(head.utf8) + events)], then: .hang))
        case 3:
            return ("bad chunk size", HostileModelService.Reply([.bytes(Array("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n".utf8))]))
        case 4: return ("100 Continue first", HostileModelService.Reply([.bytes(Array(("HTTP/1.1 100 Continue\r\n\r\n" + text).utf8))]))
        case 5: return ("HTTP/1.0 answer", HostileModelService.Reply([.bytes(Array(text.replacingOccurrences(of: "HTTP/1.1", with: "HTTP/1.0").utf8))], then: .close))
        default: return ("silence, then close", HostileModelService.Reply([.pause(.milliseconds(number(1...50)))], then: .close))
        }
    }

    enum PathStep: CustomStringConvertible {
        case key(String)
        case index(Int)
        var description: String {
            switch self {
            case .key(let key): key
            case .index(let index): "[\(index)]"
            }
        }
    }

    private func collect(_ value: Any, path: [PathStep], into paths: inout [[PathStep]]) {
        if let object = value as? [String: Any] {
            for (key, child) in object.sorted(by: { $0.key < $1.key }) {
                paths.append(path + [.key(key)])
                collect(child, path: path + [.key(key)], into: &paths)
            }
        } else if let array = value as? [Any] {
            for (index, child) in array.enumerated() {
                paths.append(path + [.index(index)])
                collect(child, path: path + [.index(index)], into: &paths)
            }
        }
    }

    /// `value` with the field at `path` replaced by `marker` (operation 0-6), removed (7-8) or renamed (9).
    private func apply(_ value: Any, path: ArraySlice<PathStep>, operation: UInt64, marker: String) -> Any {
        guard let step = path.first else { return marker }
        let last = path.count == 1
        switch (step, value) {
        case (.key(let key), var object as [String: Any]):
            if last, operation >= 7 {
                let old = object.removeValue(forKey: key)
                if operation == 9, let old { object[key + "_"] = old }
                return object
            }
            object[key] = apply(object[key] ?? NSNull(), path: path.dropFirst(), operation: operation, marker: marker)
            return object
        case (.index(let index), var array as [Any]) where index < array.count:
            if last, operation >= 7 {
                array.remove(at: index)
                return array
            }
            array[index] = apply(array[index], path: path.dropFirst(), operation: operation, marker: marker)
            return array
        default:
            return value
        }
    }
}

/// What a turn may carry, whatever the upstream sent.
private func checkBounds(_ turn: ModelTurn) -> String? {
    let usage = turn.usage
    for (name, count) in [("input", usage.inputTokens), ("output", usage.outputTokens), ("cache read", usage.cacheReadTokens),
                          ("cache write", usage.cacheWriteTokens)] where !(0...Usage.maxTokensPerCall).contains(count) {
        return "\(name) tokens \(count)"
    }
    if let cost = usage.costUSD, !(cost.isFinite && cost >= 0) { return "cost \(cost)" }
    if turn.content.count > AnthropicTurnAccumulator.maxBlocks + 2 { return "\(turn.content.count) blocks" }
    let kept = turn.content.reduce(0) { $0 + ((try? JSONEncoder().encode($1).count) ?? 0) }
    let cap = TurnSize.maxTextBytes + TurnSize.maxToolInputBytes + TurnSize.maxOtherBytes
    if kept > 2 * cap { return "\(kept) bytes kept" }
    return nil
}

@Suite("Hostile upstream: no answer from a model service crashes, bloats or confuses the client", .cpuQuiet, .timeLimit(.minutes(3)))
struct HostileUpstreamTests {
    static var seed: UInt64 {
        switch ProcessInfo.processInfo.environment["SWITCHBOARD_FUZZ_SEED"] {
        case "random"?: UInt64.random(in: 0...UInt64.max)
        case let value?: UInt64(value) ?? 20_261_208
        case nil: 20_261_208
        }
    }

    static var cases: Int { ProcessInfo.processInfo.environment["SWITCHBOARD_FUZZ_CASES"].flatMap(Int.init) ?? 1_500 }

    @Test("mutated answers of both wire formats: each ends whole or with a StreamError, within bounds, and the next call reads its own answer",
          arguments: Wire.allCases)
    func mutations(wire: Wire) async throws {
        let seed = Self.seed &+ (wire == .anthropic ? 0 : 1)
        let clean = wire.clean
        let service = try await HostileModelService.start(clean: clean.reply)
        let client = wire.client(service)
        var mutator = Mutator(random: SplitMix64(seed: seed), wire: wire)
        let clock = ContinuousClock()
        var slowest: (Duration, String) = (.zero, "")
        var outcomes: [String: Int] = [:]
        for number in 0..<Self.cases {
            let (what, reply) = mutator.next()
            service.reset()
            service.enqueue(reply)
            let started = clock.now
            let place = "\(wire) seed \(seed) case \(number): \(what)"
            do {
                let turn = try await client.streamTurn(hostileRequest) { _ in }
                if let problem = checkBounds(turn) { Issue.record("\(place): \(problem)") }
                outcomes["turn", default: 0] += 1
            } catch let error as StreamError {
                outcomes[error.code.rawValue, default: 0] += 1
                if error.message.contains("10.0.0") || error.message.contains("example.com") || error.message.contains("hunter2")
                    || error.message.contains("AKIA") {
                    Issue.record("\(place): the provider's words reached the client: \(error.message)")
                }
            } catch {
                Issue.record("\(place): not a StreamError: \(error)")
            }
            let took = clock.now - started
            if took > slowest.0 { slowest = (took, what) }
            if took > .seconds(5) { Issue.record("\(place): took \(took)") }
            // The next call reads its own answer: nothing of the last one is left on a connection.
            service.reset()
            do {
                let turn = try await client.streamTurn(hostileRequest) { _ in }
                let text = turn.content.compactMap { $0["text"]?.stringValue }.joined()
                if text != clean.text { Issue.record("\(place): the next call read \(text.debugDescription)") }
            } catch {
                Issue.record("\(place): the next call failed: \(error)")
            }
        }
        try await client.shutdown()
        try await service.stop()
        print("hostile \(wire): \(Self.cases) cases, seed \(seed), outcomes \(outcomes.sorted { $0.key < $1.key }), slowest \(slowest.0) (\(slowest.1))")
        #expect(outcomes["turn", default: 0] > Self.cases / 10, "most mutations still read as answers: the mutator reaches the accumulator")
    }
}
