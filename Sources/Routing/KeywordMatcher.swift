/// A word of the analysed text, lowercased, with its UTF-16 offsets.
struct Token: Sendable {
    let word: String
    let start: Int
    let end: Int
}

/// Splits text into words on Unicode word boundaries: letters, digits and combining marks form words,
/// everything else separates them. Offsets are UTF-16 units, as JavaScript strings count them.
enum WordTokenizer {
    static func isWordScalar(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII {
            let v = scalar.value
            return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A)
        }
        let properties = scalar.properties
        if properties.isAlphabetic || properties.numericType != nil { return true }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }

    /// Words of `text` up to `limit` UTF-16 units.
    static func tokens(in text: String, limit: Int = .max) -> [Token] {
        var tokens: [Token] = []
        var current = String.UnicodeScalarView()
        var offset = 0
        var start = 0
        var allASCII = true
        func flush(at end: Int) {
            guard !current.isEmpty else { return }
            let word = String(current)
            tokens.append(Token(word: allASCII && !word.utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) ? word : word.lowercased(),
                                start: start, end: end))
            current = String.UnicodeScalarView()
            allASCII = true
        }
        for scalar in text.unicodeScalars {
            if offset >= limit { break }
            if isWordScalar(scalar) {
                if current.isEmpty { start = offset }
                if !scalar.isASCII { allASCII = false }
                current.append(scalar)
            } else {
                flush(at: offset)
            }
            offset += scalar.utf16.count
        }
        flush(at: offset)
        return tokens
    }
}

/// All keywords and phrases of a rule set in one dictionary keyed by their first word, so one pass over
/// the text's words finds every hit, however many rules there are.
struct KeywordMatcher: Sendable {
    struct Hit: Sendable {
        let keyword: Int
        let start: Int
        let end: Int
    }

    /// Each keyword's words, by keyword id.
    private(set) var phrases: [[String]] = []
    private var ids: [[String]: Int] = [:]
    private var byFirstWord: [String: [Int]] = [:]

    /// The id of `phrase`, adding it if new; `nil` when the phrase has no word characters at all.
    mutating func intern(_ phrase: String) -> Int? {
        let words = WordTokenizer.tokens(in: phrase).map(\.word)
        guard let first = words.first else { return nil }
        if let id = ids[words] { return id }
        let id = phrases.count
        phrases.append(words)
        ids[words] = id
        byFirstWord[first, default: []].append(id)
        return id
    }

    /// Every keyword occurrence in `tokens`, in text order.
    func hits(in tokens: [Token]) -> [Hit] {
        var hits: [Hit] = []
        for (index, token) in tokens.enumerated() {
            guard let candidates = byFirstWord[token.word] else { continue }
            for id in candidates {
                let words = phrases[id]
                guard index + words.count <= tokens.count else { continue }
                var matched = true
                var k = 1
                while k < words.count {
                    if tokens[index + k].word != words[k] { matched = false; break }
                    k += 1
                }
                if matched {
                    hits.append(Hit(keyword: id, start: token.start, end: tokens[index + words.count - 1].end))
                }
            }
        }
        return hits
    }
}
