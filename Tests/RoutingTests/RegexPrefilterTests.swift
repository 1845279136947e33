import Foundation
import Testing
@testable import Routing

@Suite("Regex prefilter")
struct RegexPrefilterTests {
    @Test("finds the literal text every match must contain", arguments: [
        (#"\b(compare|versus|vs\.?)\b"#, ["compare", "versus", "vs"]),
        (#"chart"#, ["chart"]),
        (#"Export\s+to\s+PDF"#, ["export"]),
        (#"(?:total|sum) of (salar(y|ies))"#, ["salar"]),
        (#"colou?r"#, ["colo"]),
        (#"(ab)+c"#, ["ab"]),
        (#"x{2,}yz"#, ["yz"]),
        (#"^\d+%$"#, ["%"]),
        (#"a|b\d"#, ["a", "b"]),
        (#"(?<year>20\d\d) budget"#, ["budget"]),
        (#"über"#, ["ber"]),
    ])
    func requirement(pattern: String, expected: [String]) {
        #expect(RegexPrefilter.requirement(for: pattern).map(Set.init) == Set(expected))
    }

    @Test("gives no requirement when it cannot be sure", arguments: [
        #"\d+"#, #"a|\w+"#, #"(?i)chart"#, #"(?=chart)"#, #"\x41BC"#, #"\p{L}+"#, #"(a)\1"#, #"[abc]+"#, #"x?"#,
        #"\Qa.b\E"#,
    ])
    func noRequirement(pattern: String) {
        #expect(RegexPrefilter.requirement(for: pattern) == nil)
    }

    /// Soundness: whenever ICU finds a match, the prefilter must have let the text through.
    @Test("never rules out a text the regex matches")
    func soundness() throws {
        let patterns = [
            #"\b(compare|versus|vs\.?)\b"#, #"strasse"#, #"file"#, #"kelvin"#, #"ss"#, #"first"#, #"Export\s+to\s+PDF"#,
            #"colou?r"#, #"(ab)+c"#, #"stra(ss|ß)e"#, #"is"#, #"\bsao paulo\b"#, #"5-10%"#,
        ]
        let texts = [
            "Compare Berlin VS. London", "STRASSE", "Straße", "STRAẞE", "ﬁle", "\u{212A}elvin", "ſs", "ﬁrst",
            "export   to pdf", "COLOR and colour", "ababc", "İs it", "SAO PAULO", "São Paulo", "5-10% increment",
            "nothing here", "",
        ]
        for pattern in patterns {
            let regex = try CompiledRegex(pattern: pattern)
            for text in texts {
                let matches = !regex.matches(in: text, length: text.utf16.count, deadline: .now + .seconds(60)).isEmpty
                let folded = FoldedText(text, limit: .max)
                let passes = regex.requirement.map { $0.contains(where: folded.contains) } ?? true
                #expect(!matches || passes, "prefilter \(regex.requirement ?? []) ruled out \"\(text)\" which /\(pattern)/ matches")
            }
        }
    }
}
