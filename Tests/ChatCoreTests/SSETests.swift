import ChatCore
import Foundation
import TestSupport
import Testing

@Suite("SSE decoder")
struct SSEDecoderTests {
    static let stream = Array("""
        : a comment\r
        event: message_start\r
        data: {"type":"message_start"}\r
        \r
        event: content_block_delta
        data: {"text":"São Paulo 😀"}
        id: 7
        retry: 100
        unknown: field

        data: first line
        data:second line
        data

        event: ping\rdata: {"type": "ping"}\r\rdata: cut off at the end
        """.utf8)

    static let expected = [
        ServerSentEvent(event: "message_start", data: #"{"type":"message_start"}"#),
        ServerSentEvent(event: "content_block_delta", data: #"{"text":"São Paulo 😀"}"#, id: "7"),
        ServerSentEvent(event: nil, data: "first line\nsecond line\n", id: "7"),
        ServerSentEvent(event: "ping", data: #"{"type": "ping"}"#, id: "7"),
    ]

    private func decode(_ bytes: [UInt8], chunk: Int) throws -> [ServerSentEvent] {
        var decoder = SSEDecoder()
        var events: [ServerSentEvent] = []
        var start = 0
        while start < bytes.count {
            let end = min(start + chunk, bytes.count)
            try decoder.feed(bytes[start..<end]) { events.append($0) }
            start = end
        }
        return events
    }

    @Test("any chunk boundary gives the same events, one byte at a time included", arguments: [1, 2, 3, 5, 7, 64, 10_000])
    func chunkBoundaries(chunk: Int) throws {
        #expect(try decode(Self.stream, chunk: chunk) == Self.expected)
    }

    @Test("a CRLF split across chunks ends one line, not two")
    func splitCRLF() throws {
        var decoder = SSEDecoder()
        var events: [ServerSentEvent] = []
        for piece in ["data: a\r", "\n", "\r", "\ndata: b\r", "\n\r\n"] {
            try decoder.feed(Array(piece.utf8)) { events.append($0) }
        }
        #expect(events == [ServerSentEvent(data: "a"), ServerSentEvent(data: "b")])
    }

    @Test("a line without end grows no further than the limit")
    func lineLimit() {
        var decoder = SSEDecoder()
        #expect(throws: SSEDecoder.LineTooLong.self) {
            try decoder.feed([UInt8](repeating: 0x61, count: SSEDecoder.maxLineBytes + 1)) { _ in }
        }
    }
}

@Suite("SSE encoder")
struct SSEEncoderTests {
    private func decodeJSON(_ bytes: [UInt8]) throws -> (id: String?, json: [String: Any]) {
        var decoder = SSEDecoder()
        var events: [ServerSentEvent] = []
        try decoder.feed(bytes) { events.append($0) }
        #expect(events.count == 1)
        let event = try #require(events.first)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any])
        return (event.id, json)
    }

    @Test("every event has an increasing id, its type and a millisecond UTC timestamp")
    func envelope() throws {
        var encoder = SSEEncoder()
        let date = Date(timeIntervalSince1970: 1_764_073_463.25)
        let first = try decodeJSON(encoder.encode(.sessionStart(sessionId: "s1"), at: date))
        let second = try decodeJSON(encoder.encode(.iterationStart(iteration: 1), at: date))
        #expect(first.id == "1")
        #expect(second.id == "2")
        #expect(first.json["type"] as? String == "session_start")
        #expect(first.json["timestamp"] as? String == "2025-11-25T12:24:23.250Z")
        #expect(first.json["sessionId"] as? String == "s1")
        #expect(first.json["message"] as? String == "Processing your request...")
        #expect(second.json["iteration"] as? Int == 1)
    }

    @Test("text chunks carry everything so far, escaped once")
    func accumulated() throws {
        var encoder = SSEEncoder()
        let chunks = ["Hello \"wor", "ld\"\n", "\u{1}😀 São\\"]
        var soFar = ""
        for chunk in chunks {
            soFar += chunk
            let (_, json) = try decodeJSON(encoder.encode(.textChunk(chunk)))
            #expect(json["chunk"] as? String == chunk)
            #expect(json["accumulated"] as? String == soFar)
        }
    }

    @Test("with accumulated off, text chunks carry only the chunk, the same text and ids otherwise")
    func withoutAccumulated() throws {
        var with = SSEEncoder()
        var without = SSEEncoder(accumulated: false)
        for chunk in ["Hello \"wor", "ld\"\n", "\u{1}😀 São\\"] {
            let full = try decodeJSON(with.encode(.textChunk(chunk)))
            let lean = try decodeJSON(without.encode(.textChunk(chunk)))
            #expect(lean.json["chunk"] as? String == chunk)
            #expect(lean.json["accumulated"] == nil)
            #expect(lean.id == full.id)
        }
    }

    @Test("tool and end events carry their fields")
    func toolEvents() throws {
        var encoder = SSEEncoder()
        let detected = try decodeJSON(encoder.encode(.toolDetected(tool: "get_employees", toolUseId: "toolu_1"))).json
        #expect(detected["message"] as? String == "Preparing to use: get_employees")
        let executing = try decodeJSON(encoder.encode(.toolsExecuting(tools: ["a", "b"]))).json
        #expect(executing["count"] as? Int == 2)
        #expect(executing["tools"] as? [String] == ["a", "b"])
        let progress = try decodeJSON(encoder.encode(.toolProgress(ToolProgress(
            tool: "a", toolUseId: "t", status: .failed, current: 1, total: 2, executionTimeMs: 752, error: "boom")))).json
        #expect(progress["status"] as? String == "failed")
        #expect(progress["progress"] as? [String: Int] == ["current": 1, "total": 2])
        #expect(progress["executionTime"] as? String == "752ms")
        #expect(progress["executionTimeMs"] as? Int == 752)
        #expect(progress["error"] as? String == "boom")
        let complete = try decodeJSON(encoder.encode(.complete(Completion(
            iterations: 2, stopReason: "end_turn", totalTimeMs: 1234, usage: Usage(inputTokens: 10, outputTokens: 20))))).json
        #expect(complete["usage"] as? [String: Int] == ["inputTokens": 10, "outputTokens": 20, "cacheReadTokens": 0, "cacheWriteTokens": 0])
        #expect(complete["stopReason"] as? String == "end_turn")
        #expect(complete["costUSD"] == nil, "no price, no cost")
        // A cost is a plain number rounded to millionths of a dollar.
        for (cost, text) in [(0.0042154, "0.004215"), (12.0, "12"), (0.1, "0.1"), (3.0000004, "3"), (0.0000006, "0.000001"), (0.0, "0")] {
            let bytes = encoder.encode(.complete(Completion(iterations: 1, stopReason: "end_turn", totalTimeMs: 1,
                                                            usage: Usage(inputTokens: 1, outputTokens: 1, cacheReadTokens: 7, costUSD: cost))))
            #expect(String(decoding: bytes, as: UTF8.self).contains(#""cacheReadTokens":7,"cacheWriteTokens":0},"costUSD":\#(text)}"#),
                    "\(cost)")
        }
        let error = try decodeJSON(encoder.encode(.error(StreamError(code: .overloaded, message: "busy", retryable: true)))).json
        #expect(error["code"] as? String == "overloaded")
        #expect(error["retryable"] as? Bool == true)
    }
}

@Suite("The shared vocabulary")
struct VocabularyTests {
    @Test("Docs/STREAMING.md's error table lists exactly the stream error codes")
    func errorCodesDocumented() throws {
        let documented = try ProjectDocs.tableColumn("STREAMING.md", after: "### Error codes", column: 0)
        #expect(documented == StreamErrorCode.allCases.map(\.rawValue))
    }

    @Test("Docs/STREAMING.md's event table lists exactly the stream's events, in order, as the encoder names them")
    func eventsDocumented() throws {
        let documented = try ProjectDocs.tableColumn("STREAMING.md", after: "## Events", column: 0)
        #expect(documented == StreamEvent.Kind.allCases.map(\.rawValue))
        var encoder = SSEEncoder(accumulated: false)
        #expect(String(decoding: encoder.encode(.iterationStart(iteration: 1)), as: UTF8.self).contains(#""type":"iteration_start""#))
    }

    @Test("stop reasons keep their wire text, new ones included", arguments: [
        "end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal", "max_iterations", "model_context_window_exceeded",
    ])
    func stopReasonRoundTrip(_ text: String) {
        #expect(StopReason(rawValue: text).rawValue == text)
    }

    @Test("a stop reason the model service adds later is kept, not mistaken for a known one")
    func unknownStopReason() {
        #expect(StopReason(rawValue: "model_context_window_exceeded") == .other("model_context_window_exceeded"))
        #expect(StopReason(rawValue: "end_turn") == .endTurn)
    }
}

extension VocabularyTests {
    @Test("a known reason sent as text is the known case (equality goes by meaning, not by spelling)")
    func knownReasonEquality() {
        #expect(StopReason.other("end_turn") == .endTurn)
        #expect(StopReason(rawValue: "tool_use") == .toolUse)
        #expect(StopReason(rawValue: "tool_use") != .endTurn)
    }

    @Test("SSEAccumulator adds accumulated to events encoded without it, byte for byte what the accumulating encoder sends")
    func accumulatorMatchesEncoder() {
        let date = Date(timeIntervalSince1970: 1_800_000_000.123)
        var texts = ["plain", "quote \" and \\ backslash", "line\nbreak\ttab", "é ü 中文 🙂", "\u{01}control", "", "}\n\n", ",\"chunk\":\"x"]
        var generator = SplitMix64(seed: 7)
        for _ in 0..<50 { texts.append(String((0..<Int.random(in: 0...12, using: &generator)).map { _ in "a\"\\é\n}{".randomElement(using: &generator)! })) }
        var events: [StreamEvent] = [.sessionStart(sessionId: "s"), .iterationStart(iteration: 1)]
        for (index, text) in texts.enumerated() {
            events.append(.textChunk(text))
            if index % 7 == 3 { events.append(.toolDetected(tool: "get_employees", toolUseId: "t\(index)")) }
        }
        var with = SSEEncoder(accumulated: true)
        var without = SSEEncoder(accumulated: false)
        let expected = events.map { with.encode($0, at: date) }
        let kept = events.map { without.encode($0, at: date) }
        var accumulator = SSEAccumulator()
        #expect(kept.map { accumulator.rewrite($0) } == expected)
        // A reader that starts halfway takes in what came before, then rewrites the rest.
        let half = kept.count / 2
        var late = SSEAccumulator()
        for event in kept[..<half] { late.add(event) }
        #expect(kept[half...].map { late.rewrite($0) } == Array(expected[half...]))
    }
}
