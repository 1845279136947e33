/// Random identifiers (a stream's session id, a compatible answer's id) from the system's generator
/// (`getrandom(2)` on Linux): unguessable, and with no file opened per id as Foundation's `UUID()` does here
/// (it reads `/dev/urandom`: an open, a read and a close for every chat).
public enum RandomID {
    /// A version 4 UUID in lower case, `8-4-4-4-12` hexadecimal digits.
    public static func uuid() -> String {
        var generator = SystemRandomNumberGenerator()
        var high = generator.next() as UInt64
        var low = generator.next() as UInt64
        high = (high & ~0xF000) | 0x4000                                   // version 4
        low = (low & ~(0xC000_0000_0000_0000 as UInt64)) | 0x8000_0000_0000_0000   // variant 10
        var text = [UInt8]()
        text.reserveCapacity(36)
        appendHex(high >> 32, digits: 8, to: &text)
        text.append(UInt8(ascii: "-"))
        appendHex(high >> 16, digits: 4, to: &text)
        text.append(UInt8(ascii: "-"))
        appendHex(high, digits: 4, to: &text)
        text.append(UInt8(ascii: "-"))
        appendHex(low >> 48, digits: 4, to: &text)
        text.append(UInt8(ascii: "-"))
        appendHex(low, digits: 12, to: &text)
        return String(decoding: text, as: UTF8.self)
    }

    /// 32 hexadecimal digits in lower case (a UUID without its dashes).
    public static func hex32() -> String {
        var generator = SystemRandomNumberGenerator()
        var text = [UInt8]()
        text.reserveCapacity(32)
        appendHex(generator.next(), digits: 16, to: &text)
        appendHex(generator.next(), digits: 16, to: &text)
        return String(decoding: text, as: UTF8.self)
    }

    private static let digits = Array("0123456789abcdef".utf8)

    /// The low `digits` hexadecimal digits of `value`, most significant first.
    private static func appendHex(_ value: UInt64, digits count: Int, to text: inout [UInt8]) {
        for index in stride(from: count - 1, through: 0, by: -1) {
            text.append(digits[Int((value >> UInt64(index * 4)) & 0xF)])
        }
    }
}
