/// Literal text that any match of a regex must contain, found at load so most regexes can be skipped
/// without running them: `\b(compare|versus)\b` cannot match a text containing neither word.
///
/// The requirement is a list of alternatives (one of them must occur), ASCII and lowercase. Anything the
/// parser does not understand yields no requirement, so the prefilter can only skip, never wrongly match.
enum RegexPrefilter {
    /// Alternatives of which a match must contain one, or `nil` when nothing is certain.
    static func requirement(for pattern: String) -> [String]? {
        var parser = Parser(Array(pattern.unicodeScalars))
        guard let node = parser.parseAlternation(), parser.atEnd, parser.valid else { return nil }
        guard let alternatives = node.required, !alternatives.isEmpty, !alternatives.contains(where: \.isEmpty) else {
            return nil
        }
        return alternatives
    }

    /// A piece of pattern: what it requires, and whether it is a plain literal that can join its neighbours.
    private struct Piece {
        /// Literal text this piece always matches exactly (case-insensitively), if it is that simple.
        var literal: String?
        /// Alternatives of which one occurs in any match of this piece.
        var required: [String]?
    }

    private struct Parser {
        let chars: [Unicode.Scalar]
        var index = 0
        var valid = true

        init(_ chars: [Unicode.Scalar]) { self.chars = chars }

        var atEnd: Bool { index >= chars.count }

        mutating func parseAlternation() -> Piece? {
            var branches: [Piece] = [parseSequence()]
            while !atEnd, chars[index] == "|" {
                index += 1
                branches.append(parseSequence())
            }
            guard valid else { return nil }
            if branches.count == 1 { return branches[0] }
            var union: [String] = []
            for branch in branches {
                guard let required = branch.required else { return Piece(literal: nil, required: nil) }
                union.append(contentsOf: required)
            }
            return Piece(literal: nil, required: Array(Set(union)).sorted())
        }

        /// A sequence: literal runs joined up; the most selective requirement of its parts kept.
        mutating func parseSequence() -> Piece {
            var run = ""
            var candidates: [[String]] = []
            var allLiteral = true
            func endRun() {
                if !run.isEmpty { candidates.append([run]) }
                run = ""
            }
            while valid, !atEnd, chars[index] != "|", chars[index] != ")" {
                guard let atom = parseAtom() else { valid = false; break }
                let (minimum, unbounded) = parseQuantifier()
                guard valid else { break }
                if minimum == 0 {
                    endRun()
                    allLiteral = false
                    continue
                }
                if let literal = atom.literal, minimum == 1, !unbounded {
                    run += literal
                    continue
                }
                allLiteral = false
                if let literal = atom.literal {
                    // Repeated: the literal occurs at least once, then the run cannot continue past it.
                    run += literal
                    endRun()
                } else {
                    endRun()
                    if let required = atom.required { candidates.append(required) }
                }
            }
            let literal = allLiteral ? run : nil
            endRun()
            // The best requirement is the one whose shortest alternative is longest.
            let best = candidates.max { a, b in
                (a.map(\.count).min() ?? 0, -a.count) < (b.map(\.count).min() ?? 0, -b.count)
            }
            return Piece(literal: literal, required: best)
        }

        /// One atom, or `nil` for syntax the prefilter does not model (the pattern then gets no requirement).
        mutating func parseAtom() -> Piece? {
            let c = chars[index]
            index += 1
            switch c {
            case "(":
                if index < chars.count, chars[index] == "?" {
                    // Only non-capturing and named groups are understood; look-arounds, flags and the rest are not.
                    if index + 1 < chars.count, chars[index + 1] == ":" {
                        index += 2
                    } else if index + 2 < chars.count, chars[index + 1] == "<", chars[index + 2] != "=", chars[index + 2] != "!" {
                        while index < chars.count, chars[index] != ">" { index += 1 }
                        index += 1
                    } else {
                        return nil
                    }
                }
                guard let inner = parseAlternation(), index < chars.count, chars[index] == ")" else { return nil }
                index += 1
                return inner
            case "[":
                // A character class: skip it, nested sets included.
                var depth = 1
                if index < chars.count, chars[index] == "^" { index += 1 }
                if index < chars.count, chars[index] == "]" { index += 1 }
                while index < chars.count, depth > 0 {
                    switch chars[index] {
                    case "\\": index += 1
                    case "[": depth += 1
                    case "]": depth -= 1
                    default: break
                    }
                    index += 1
                }
                return depth == 0 ? Piece(literal: nil, required: nil) : nil
            case "\\":
                guard index < chars.count else { return nil }
                let escaped = chars[index]
                index += 1
                if escaped == "Q" || escaped == "E" { return nil }
                if escaped.properties.isAlphabetic || ("0"..."9").contains(escaped) {
                    switch escaped {
                    // Zero-width or class escapes: no literal, and nothing else to parse.
                    case "b", "B", "A", "z", "Z", "G", "d", "D", "w", "W", "s", "S", "h", "H", "v", "V", "R", "X":
                        return Piece(literal: nil, required: nil)
                    default:
                        return nil // \x41, \u00e9, \p{…}, back-references: not modelled
                    }
                }
                return literal(escaped)
            case "^", "$":
                return Piece(literal: nil, required: nil)
            case ".":
                return Piece(literal: nil, required: nil)
            case "*", "+", "?", "{", ")", "|":
                return nil
            default:
                return literal(c)
            }
        }

        private func literal(_ c: Unicode.Scalar) -> Piece {
            // Only ASCII letters, digits and punctuation are trusted to match nothing but themselves and their case
            // twins; anything else (and whitespace, which (?x) could change) breaks the run.
            guard c.isASCII, c.value > 0x20, c.value < 0x7F else { return Piece(literal: nil, required: nil) }
            let lower = Character(c).lowercased()
            return Piece(literal: lower, required: [lower])
        }

        /// The quantifier after an atom: its minimum count and whether it is unbounded.
        mutating func parseQuantifier() -> (minimum: Int, unbounded: Bool) {
            guard index < chars.count else { return (1, false) }
            var result: (Int, Bool)
            switch chars[index] {
            case "?": result = (0, false); index += 1
            case "*": result = (0, true); index += 1
            case "+": result = (1, true); index += 1
            case "{":
                guard let quantifier = BraceQuantifier(chars, at: index), let minimum = quantifier.minimum else {
                    valid = false
                    return (1, false)
                }
                index = quantifier.end
                let maximum = quantifier.maximumText
                result = (minimum, maximum != nil)
                if minimum > 1 || (maximum.map { $0 != "" && Int($0) != minimum } ?? false) { result.1 = true }
            default:
                return (1, false)
            }
            // Lazy and possessive suffixes do not change what must occur.
            if index < chars.count, chars[index] == "?" || chars[index] == "+" { index += 1 }
            return result
        }
    }
}

/// The analysed text folded for the prefilter: ASCII lowercased, other characters through their full
/// case folding, approximated as lower(upper(lower(c))) (ß and ẞ → ss, ﬁ → fi, K → k), so no text a case-insensitive regex matches is missed.
struct FoldedText {
    private var bytes: [UInt8]

    init(_ text: String, limit: Int) {
        bytes = []
        bytes.reserveCapacity(text.utf8.count)
        var offset = 0
        for scalar in text.unicodeScalars {
            if offset >= limit { break }
            offset += scalar.utf16.count
            if scalar.isASCII {
                let v = UInt8(scalar.value)
                bytes.append(v >= 0x41 && v <= 0x5A ? v + 0x20 : v)
            } else {
                bytes.append(contentsOf: scalar.properties.lowercaseMapping.uppercased().lowercased().utf8)
            }
        }
    }

    func contains(_ needle: String) -> Bool {
        var needle = needle
        return needle.withUTF8 { n in
            bytes.withUnsafeBufferPointer { h in
                guard let first = n.first else { return true }
                guard n.count <= h.count else { return false }
                var start = 0
                let last = h.count - n.count
                while start <= last {
                    guard let found = h[start...last].firstIndex(of: first) else { return false }
                    var k = 1
                    while k < n.count, h[found + k] == n[k] { k += 1 }
                    if k == n.count { return true }
                    start = found + 1
                }
                return false
            }
        }
    }
}
