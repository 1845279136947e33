import Foundation

/// A rule's regex, compiled once at load: case-insensitive, UTF-16 offsets, with the literal text any match
/// must contain so that most texts are ruled out without running it.
struct CompiledRegex: @unchecked Sendable {
    // NSRegularExpression is immutable and documented as safe to share across threads.
    let expression: NSRegularExpression
    let pattern: String
    /// One of these (ASCII, lowercase) occurs in every match; `nil` when the pattern gives no such guarantee.
    let requirement: [String]?

    static let maxPatternLength = 1_000
    /// Hits reported per regex and text: enough to highlight, bounded for huge inputs.
    static let maxMatches = 16

    enum Problem: Error, Equatable {
        case tooLong(Int)
        case nestedQuantifier
        case invalid(String)
    }

    init(pattern: String) throws(Problem) {
        guard pattern.count <= Self.maxPatternLength else { throw .tooLong(pattern.count) }
        if Self.hasNestedUnboundedQuantifier(pattern) { throw .nestedQuantifier }
        do {
            expression = try NSRegularExpression(
                pattern: pattern, options: [.caseInsensitive])
        } catch {
            throw .invalid(Self.describe(error))
        }
        self.pattern = pattern
        self.requirement = RegexPrefilter.requirement(for: pattern)
    }

    /// Matches in the first `length` UTF-16 units of `text`, as UTF-16 ranges.
    func matches(in text: String, length: Int) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        expression.enumerateMatches(in: text, options: [], range: NSRange(location: 0, length: length)) { result, _, stop in
            guard let range = result?.range, range.location != NSNotFound else { return }
            ranges.append(range.location..<(range.location + range.length))
            if ranges.count == Self.maxMatches { stop.pointee = true }
        }
        return ranges
    }

    /// Whether a group that repeats without bound contains something that also repeats without bound,
    /// like `(a+)+` or `(\w*x)*`: the shape that backtracks exponentially on a near miss.
    static func hasNestedUnboundedQuantifier(_ pattern: String) -> Bool {
        let chars = Array(pattern.unicodeScalars)
        var groupHasUnbounded: [Bool] = []
        var lastClosedGroupHadUnbounded = false
        var i = 0
        func unboundedQuantifier(at index: Int) -> Bool {
            guard index < chars.count else { return false }
            switch chars[index] {
            case "*", "+": return true
            case "{": return BraceQuantifier(chars, at: index)?.isUnbounded == true
            default: return false
            }
        }
        func markUnbounded() {
            if !groupHasUnbounded.isEmpty { groupHasUnbounded[groupHasUnbounded.count - 1] = true }
        }
        while i < chars.count {
            let c = chars[i]
            switch c {
            case "\\":
                i += 2
                if unboundedQuantifier(at: i) { markUnbounded() }
                continue
            case "[":
                var j = i + 1
                if j < chars.count, chars[j] == "^" { j += 1 }
                if j < chars.count, chars[j] == "]" { j += 1 }
                while j < chars.count, chars[j] != "]" { j += chars[j] == "\\" ? 2 : 1 }
                i = j + 1
                if unboundedQuantifier(at: i) { markUnbounded() }
                continue
            case "(":
                groupHasUnbounded.append(false)
            case ")":
                lastClosedGroupHadUnbounded = groupHasUnbounded.popLast() ?? false
                if unboundedQuantifier(at: i + 1) {
                    if lastClosedGroupHadUnbounded { return true }
                    markUnbounded()
                } else if lastClosedGroupHadUnbounded {
                    markUnbounded()
                }
            default:
                if unboundedQuantifier(at: i + 1), c != "*", c != "+", c != "?" { markUnbounded() }
            }
            i += 1
        }
        return false
    }

    private static func describe(_ error: Error) -> String {
        let nsError = error as NSError
        if let reason = nsError.userInfo["NSInvalidValue"] as? String { return "invalid pattern \(reason)" }
        return "the pattern does not compile"
    }
}
