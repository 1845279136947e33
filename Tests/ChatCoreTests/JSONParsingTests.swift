import ChatCore
import Foundation
import Testing

@Suite("JSON parsing")
struct JSONParsingTests {
    @Test("agrees with Foundation's decoder", arguments: [
        #"{"a":1,"b":[true,false,null],"c":"x\"y\\z\/\n\t\u00e9\ud83d\ude00","d":-12.5e-1,"e":{},"f":[]}"#,
        #"  [1, 2.0, 3e2, -0, 0.001, 123456789012345678901234567890]  "#,
        #""São Paulo 😀""#,
        #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"word "}}"#,
        "9007199254740993",
    ])
    func agrees(text: String) throws {
        let ours = try JSONValue(parsing: text)
        let foundation = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(ours == foundation)
    }

    @Test("written back by hand, a value reads the same in Foundation's decoder and ours", arguments: [
        #"{"a":1,"b":[true,false,null],"c":"x\"y\\z\/\n\t\r\u0001\u001f\u00e9\ud83d\ude00","d":-12.5e-1,"e":{},"f":[]}"#,
        #"[1, 2.0, 3e2, -0, 0.001, 1e-7, 123456789012345678901234567890, -9007199254740991, 0.1]"#,
        #"{"model":"m","max_tokens":4096,"stream":true,"messages":[{"role":"user","content":"São Paulo 😀"}]}"#,
    ])
    func writtenBack(text: String) throws {
        let value = try JSONValue(parsing: text)
        let bytes = value.jsonBytes
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(bytes)) == value)
        #expect(try JSONValue(parsing: String(decoding: bytes, as: UTF8.self)) == value)
    }

    @Test("refuses what is not JSON, saying where", arguments: [
        ("", 0), ("{", 1), (#"{"a" 1}"#, 5), ("[1,]", 3), ("01", 0), (#""\x""#, 2), ("tru", 0), ("{} x", 3),
        ("\"a\u{1}\"", 2), ("1.", 2), ("-", 1),
    ])
    func refuses(text: String, offset: Int) {
        #expect {
            _ = try JSONValue(parsing: text)
        } throws: { error in
            (error as? JSONParseError)?.offset == offset
        }
    }

    @Test("lone surrogates become U+FFFD; nesting is bounded")
    func edges() throws {
        #expect(try JSONValue(parsing: #""\ud800x""#) == .string("\u{FFFD}x"))
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: deep) }
    }
}

@Suite("Redaction")
struct RedactionTests {
    @Test("user information leaves every URL in the text, parsable or not", arguments: [
        ("postgres://hr:s3cret@db:5432/hr?sslmode=require", "postgres://***@db:5432/hr?sslmode=require"),
        ("postgres://hr:p@ss:w0rd@db/hr", "postgres://***@db/hr"),
        ("postgres://hr:s3cr%zz@db/hr", "postgres://***@db/hr"),
        ("connect to https://user:tok@mcp.example/mcp failed; retry postgres://a:b@c", "connect to https://***@mcp.example/mcp failed; retry postgres://***@c"),
        ("http://127.0.0.1:3000/v1/messages", "http://127.0.0.1:3000/v1/messages"),
        ("no urls here", "no urls here"),
    ])
    func credentials(text: String, expected: String) {
        #expect(Redaction.credentials(in: text) == expected)
    }
}
