import ChatCore
import Foundation
import TestSupport
import Testing

/// Seeded, so every run mutates the same way and a failure can be replayed.
typealias SeededGenerator = SplitMix64

private let seeds: [String] = [
    #"{"a":1,"b":[true,false,null],"c":"x\"y\\z\/\n\t","d":-12.5e-1,"e":{},"f":[]}"#,
    #"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"q\": 5"}}"#,
    #"{"messages":[{"role":"user","content":[{"type":"text","text":"São Paulo 😀"}]}],"maxTokens":100}"#,
    #"[0, -0.5, 1e10, 2E-3, "", " ", [[[]]], {"": {}}]"#,
]
private let alphabet = Array(#"{}[]":,.-+eE0123456789 \tnulltruefalse\/"#.utf8) + [0x00, 0x0A, 0xC3, 0xA9, 0xF0, 0x9F, 0xFF]

/// Mutates `bytes` a few times: flip, insert, delete, truncate, duplicate a slice.
private func mutate(_ bytes: [UInt8], _ rng: inout SeededGenerator) -> [UInt8] {
    var out = bytes
    for _ in 0..<Int.random(in: 1...4, using: &rng) {
        let position = out.isEmpty ? 0 : Int.random(in: 0..<out.count, using: &rng)
        switch Int.random(in: 0..<5, using: &rng) {
        case 0 where !out.isEmpty: out[position] = alphabet.randomElement(using: &rng)!
        case 1: out.insert(alphabet.randomElement(using: &rng)!, at: position)
        case 2 where !out.isEmpty: out.remove(at: position)
        case 3: out = Array(out.prefix(position))
        default:
            guard !out.isEmpty else { continue }
            let end = min(out.count, position + Int.random(in: 1...8, using: &rng))
            out.insert(contentsOf: out[position..<end], at: position)
        }
    }
    return out
}

/// Whether some `"key":` appears twice in the text (a cheap over-approximation of a repeated object key).
private func hasRepeatedKey(_ text: String) -> Bool {
    let pattern = try! NSRegularExpression(pattern: #""(?:[^"\\]|\\.)*"\s*:"#)
    let keys = pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { (text as NSString).substring(with: $0.range) }
    return Set(keys).count < keys.count
}

@Suite("Parsers under mutated input", .cpuQuiet)
struct ParserFuzzTests {
    @Test("the JSON parser accepts exactly what Foundation accepts, and agrees on the value, over 20,000 mutations")
    func jsonDifferential() throws {
        var rng = SeededGenerator(seed: 42)
        var accepted = 0
        for iteration in 0..<20_000 {
            let input = mutate(Array(seeds.randomElement(using: &rng)!.utf8), &rng)
            let ours = try? input.withUnsafeBytes { try JSONValue(parsing: $0) }
            // Invalid UTF-8 inside a string becomes U+FFFD, as a browser's `res.json()` does; Foundation refuses
            // it, so Foundation reads the text with the same repair.
            let text = String(decoding: input, as: UTF8.self)
            let theirs = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
            // Foundation turns a lone surrogate escape into an error; we into U+FFFD (tested elsewhere).
            if ours != nil, theirs == nil, text.contains("\\u") { continue }
            // Foundation tolerates a trailing comma (`[1,]`); RFC 8259 does not, and neither do we.
            if ours == nil, theirs != nil, text.range(of: #",\s*[\]}]"#, options: .regularExpression) != nil { continue }
            #expect((ours == nil) == (theirs == nil),
                    "iteration \(iteration): \(text.debugDescription) ours \(String(describing: ours)) Foundation \(String(describing: theirs))")
            if let ours, let theirs {
                accepted += 1
                // With a repeated key the last one wins for us (as in JavaScript); Foundation's choice may differ.
                if ours != theirs, hasRepeatedKey(text) { continue }
                #expect(ours == theirs, "iteration \(iteration): \(text.debugDescription)")
            }
        }
        // The mutations must leave some documents valid, or the comparison says little.
        #expect(accepted > 1000)
    }

    @Test("a repeated key: the last one wins, as in JavaScript; a number too large for a double is refused")
    func repeatedKeyAndHugeNumber() throws {
        #expect(try JSONValue(parsing: #"{"a":1,"b":0,"a":2}"#) == ["a": 2, "b": 0])
        #expect { try JSONValue(parsing: "[1e999]") } throws: { ($0 as? JSONParseError)?.description == "number out of range at byte 1" }
    }

    @Test("the SSE decoder gives the same events however a mutated stream is cut, and never more than the input holds")
    func sseChunking() throws {
        var rng = SeededGenerator(seed: 7)
        let base = Array("event: a\r\ndata: {\"x\":1}\r\n\r\n: comment\ndata: line1\ndata: lïne2\n\nid: 3\nretry: 5\ndata:\n\n".utf8)
        for iteration in 0..<3_000 {
            let input = mutate(base, &rng)
            var whole = SSEDecoder()
            var expected: [ServerSentEvent] = []
            try whole.feed(input) { expected.append($0) }
            var pieces = SSEDecoder()
            var got: [ServerSentEvent] = []
            var index = 0
            while index < input.count {
                let size = Int.random(in: 1...7, using: &rng)
                try pieces.feed(input[index..<min(input.count, index + size)]) { got.append($0) }
                index += size
            }
            #expect(got == expected, "iteration \(iteration)")
            #expect(expected.count <= input.count / 2 + 1)
        }
    }
}
