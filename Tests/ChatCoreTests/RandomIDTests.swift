import ChatCore
import Foundation
import Testing

@Suite("Random identifiers")
struct RandomIDTests {
    @Test("a session id is a version 4 UUID that Foundation reads back, in lower case, and never repeats")
    func uuid() throws {
        var seen = Set<String>()
        for _ in 0..<2_000 {
            let id = RandomID.uuid()
            let parsed = try #require(UUID(uuidString: id))
            #expect(parsed.uuidString.lowercased() == id)
            let groups = id.split(separator: "-").map(\.count)
            #expect(groups == [8, 4, 4, 4, 12])
            let bytes = Array(withUnsafeBytes(of: parsed.uuid) { Array($0) })
            #expect(bytes[6] >> 4 == 4)             // version 4
            #expect(bytes[8] >> 6 == 0b10)          // RFC 4122 variant
            seen.insert(id)
        }
        #expect(seen.count == 2_000)
    }

    @Test("an answer id is 32 lower-case hexadecimal digits, never repeated")
    func hex32() {
        let ids = (0..<2_000).map { _ in RandomID.hex32() }
        #expect(Set(ids).count == ids.count)
        for id in ids {
            #expect(id.utf8.count == 32)
            #expect(id.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) })
        }
        // Every digit position varies (a stuck nibble would show here).
        for position in 0..<32 {
            let digits = Set(ids.map { $0.utf8[$0.utf8.index($0.utf8.startIndex, offsetBy: position)] })
            #expect(digits.count > 8)
        }
    }
}
