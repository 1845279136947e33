import Foundation

/// BERT's uncased WordPiece tokenizer, as Hugging Face's `tokenizers` runs all-MiniLM-L6-v2's `tokenizer.json`
/// (BertNormalizer, BertPreTokenizer, WordPiece), so the ids it gives are the ones the embeddings were derived
/// for (`scripts/derive-embeddings.py` writes the rules the Swift side must follow into the model's
/// `manifest.json`; `reference.json` holds the ids `tokenizers` gave for 60 texts, and a test compares):
///
/// 1. clean: U+0000, U+FFFD and every Cc, Cf and Co character but tab, line feed and carriage return go; every
///    Unicode White_Space character becomes a space;
/// 2. a space on both sides of every CJK ideograph;
/// 3. accents stripped: NFD, then every Mn character dropped;
/// 4. lower-cased one code point at a time (its full mapping, no context);
/// 5. split on spaces, and every punctuation character a word of its own;
/// 6. each word split greedily into the longest pieces the vocabulary has (`##` after the first); a word with no
///    such split, or longer than 100 code points, is `[UNK]`.
public struct WordPieceTokenizer: Sendable {
    private let vocabulary: [String: Int32]
    /// The id of `[UNK]`.
    public let unknown: Int32
    public static let maxWordScalars = 100
    /// The longest piece the vocabulary has, in UTF-8 bytes: longer candidates are not looked up.
    private let longestPiece: Int

    /// `tokens`: the vocabulary, token id n at index n.
    public init(tokens: [String]) {
        var vocabulary: [String: Int32] = [:]
        vocabulary.reserveCapacity(tokens.count)
        var longest = 0
        for (id, token) in tokens.enumerated() where vocabulary[token] == nil {
            vocabulary[token] = Int32(id)
            longest = max(longest, token.utf8.count)
        }
        self.vocabulary = vocabulary
        self.unknown = vocabulary["[UNK]"] ?? 100
        self.longestPiece = longest
    }

    public var count: Int { vocabulary.count }

    /// The ids of `text` (no special tokens), at most `limit`.
    public func ids(_ text: String, limit: Int = 512) -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(min(limit, text.utf8.count / 3 + 4))
        for word in Self.words(of: normalized(text)) {
            guard ids.count < limit else { break }
            appendPieces(of: word, to: &ids)
        }
        if ids.count > limit { ids.removeLast(ids.count - limit) }
        return ids
    }

    /// Steps 1–4: the text as the pre-tokenizer sees it.
    func normalized(_ text: String) -> String {
        // Nearly every chat is ASCII: no accents to strip, no CJK, lower-casing by byte.
        if text.utf8.allSatisfy({ $0 < 0x80 }) {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(text.utf8.count)
            for byte in text.utf8 {
                switch byte {
                case 0x09, 0x0A, 0x0D, 0x20: bytes.append(0x20)
                case 0x00..<0x20, 0x7F: continue  // Cc
                case 0x41...0x5A: bytes.append(byte + 0x20)
                default: bytes.append(byte)
                }
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value == 0 || scalar.value == 0xFFFD { continue }
            let tabOrLineEnd = scalar == "\t" || scalar == "\n" || scalar == "\r"
            if !tabOrLineEnd {
                switch scalar.properties.generalCategory {
                case .control, .format, .privateUse: continue
                default: break
                }
            }
            if tabOrLineEnd || scalar.properties.isWhitespace {
                cleaned.append(" ")
                continue
            }
            if Self.isCJK(scalar) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
        }
        let decomposed = String(cleaned).decomposedStringWithCanonicalMapping
        var result = String.UnicodeScalarView()
        for scalar in decomposed.unicodeScalars where scalar.properties.generalCategory != .nonspacingMark {
            if scalar.isASCII {
                result.append(scalar.value >= 0x41 && scalar.value <= 0x5A ? Unicode.Scalar(scalar.value + 0x20)! : scalar)
            } else {
                result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(result)
    }

    /// Step 5: words split on spaces, each punctuation character a word.
    static func words(of text: String) -> [Substring] {
        var words: [Substring] = []
        var start: String.Index?
        var index = text.startIndex
        let scalars = text.unicodeScalars
        while index < text.endIndex {
            let scalar = scalars[index]
            let next = scalars.index(after: index)
            if scalar == " " || scalar.properties.isWhitespace {
                if let begun = start { words.append(text[begun..<index]) }
                start = nil
            } else if isPunctuation(scalar) {
                if let begun = start { words.append(text[begun..<index]) }
                words.append(text[index..<next])
                start = nil
            } else if start == nil {
                start = index
            }
            index = next
        }
        if let begun = start { words.append(text[begun...]) }
        return words
    }

    /// Step 6 for one word.
    private func appendPieces(of word: Substring, to ids: inout [Int32]) {
        let scalars = Array(word.unicodeScalars)
        guard scalars.count <= Self.maxWordScalars else {
            ids.append(unknown)
            return
        }
        var pieces: [Int32] = []
        var start = 0
        while start < scalars.count {
            var end = scalars.count
            var found: Int32?
            while end > start {
                var candidate = start > 0 ? "##" : ""
                candidate.unicodeScalars.append(contentsOf: scalars[start..<end])
                if candidate.utf8.count <= longestPiece, let id = vocabulary[candidate] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let found else {
                ids.append(unknown)
                return
            }
            pieces.append(found)
            start = end
        }
        ids.append(contentsOf: pieces)
    }

    /// ASCII punctuation (what BERT counts: `!` to `/`, `:` to `@`, `[` to `` ` ``, `{` to `~`), and every Unicode P*
    /// category.
    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if (0x21...0x2F).contains(value) || (0x3A...0x40).contains(value) || (0x5B...0x60).contains(value) || (0x7B...0x7E).contains(value) {
            return true
        }
        guard value >= 0x80 else { return false }
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .closePunctuation, .finalPunctuation, .initialPunctuation, .otherPunctuation,
             .openPunctuation:
            return true
        default:
            return false
        }
    }

    /// The CJK ideograph ranges `tokenizers` pads (2B920, not BERT's 2B820).
    static func isCJK(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F, 0x2B920...0x2CEAF,
             0xF900...0xFAFF, 0x2F800...0x2FA1F:
            true
        default:
            false
        }
    }
}
