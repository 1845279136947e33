/// Appends JSON to a byte buffer by hand: the per-event encoder's fast path, with no intermediate values.
public struct JSONWriter: Sendable {
    public var bytes: [UInt8]

    public init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    public mutating func raw(_ buffer: [UInt8]) {
        bytes.append(contentsOf: buffer)
    }

    /// Text that needs no escaping (an event's type, a number's digits), appended without an array of its own.
    public mutating func raw(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    public mutating func integer(_ value: Int) {
        if value == 0 { bytes.append(UInt8(ascii: "0")); return }
        var magnitude = value.magnitude
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            while magnitude > 0 {
                buffer[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            }
            for index in stride(from: count - 1, through: 0, by: -1) { bytes.append(buffer[index]) }
        }
    }

    /// A non-negative amount as a plain JSON number rounded to millionths (`0.004215`, `12`), never in exponent form.
    public mutating func millionths(_ value: Double) {
        // Total for any value: not finite or negative is 0, and past a billion it is a billion (no Int overflow).
        let micro = value.isFinite ? Int((min(max(0, value), 1e9) * 1_000_000).rounded()) : 0
        integer(micro / 1_000_000)
        var fraction = micro % 1_000_000
        guard fraction > 0 else { return }
        var places = 6
        while fraction % 10 == 0 { fraction /= 10; places -= 1 }
        bytes.append(UInt8(ascii: "."))
        var scale = 1
        for _ in 1..<places { scale *= 10 }
        while scale > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(fraction / scale % 10))
            scale /= 10
        }
    }

    /// `,"name":`, the start of an object's next field (never its first).
    public mutating func key(_ name: StaticString) {
        bytes.append(UInt8(ascii: ","))
        bytes.append(UInt8(ascii: "\""))
        raw(name)
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    /// `,"name":"value"`.
    public mutating func field(_ name: StaticString, _ value: String) {
        key(name)
        string(value)
    }

    /// `,"name":"value"`, or `,"name":null`.
    public mutating func field(_ name: StaticString, orNull value: String?) {
        key(name)
        if let value { string(value) } else { raw("null") }
    }

    /// `,"name":N`.
    public mutating func field(_ name: StaticString, _ value: Int) {
        key(name)
        integer(value)
    }

    /// `,"name":N` for a number: whole numbers without a fraction (`14`), others as Swift writes them (`0.5`).
    public mutating func field(_ name: StaticString, _ value: Double) {
        key(name)
        raw(value.compactText)
    }

    /// `,"name":N`, or `,"name":null`.
    public mutating func field(_ name: StaticString, orNull value: Int?) {
        key(name)
        if let value { integer(value) } else { raw("null") }
    }

    /// `,"name":["a","b"]`.
    public mutating func field(_ name: StaticString, _ values: [String]) {
        key(name)
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            string(value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    public mutating func bool(_ value: Bool) {
        value ? raw("true") : raw("false")
    }

    /// A quoted, escaped JSON string.
    public mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        Self.appendEscaped(value, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// The escaped contents of a JSON string, without quotes.
    public static func appendEscaped(_ value: String, to bytes: inout [UInt8]) {
        var value = value
        value.withUTF8 { utf8 in
            var start = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<index]))
                start = index + 1
                bytes.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\"))
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                              hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<utf8.count]))
        }
    }
}

extension JSONWriter {
    /// Any JSON value, compact; whole numbers below 2^53 without a fraction (as `JSONValue.encode(to:)` writes them).
    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: raw("null")
        case .bool(let flag): bool(flag)
        case .number(let number):
            if let whole = value.intValue {
                integer(whole)
            } else if number.isFinite {
                raw(Array(number.description.utf8))
            } else {
                raw("null")
            }
        case .string(let text): string(text)
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                self.value(item)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let fields):
            bytes.append(UInt8(ascii: "{"))
            var first = true
            for (key, item) in fields {
                if !first { bytes.append(UInt8(ascii: ",")) }
                first = false
                string(key)
                bytes.append(UInt8(ascii: ":"))
                self.value(item)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }
}

extension JSONValue {
    /// This value as compact JSON, written by hand (a model call's request body, without `JSONEncoder`'s containers).
    public var jsonBytes: [UInt8] {
        var writer = JSONWriter(capacity: 1024)
        writer.value(self)
        return writer.bytes
    }
}
