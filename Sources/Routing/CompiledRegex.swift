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
        case quantifiedAlternation
        case invalid(String)
    }

    init(pattern: String) throws(Problem) {
        guard pattern.count <= Self.maxPatternLength else { throw .tooLong(pattern.count) }
        if let risk = Self.riskyShape(pattern) { throw risk }
        try self.init(unchecked: pattern)
    }

    /// Compiles without the shape checks (for tests of the time limit).
    init(unchecked pattern: String) throws(Problem) {
        do {
            expression = try NSRegularExpression(
                pattern: pattern, options: [.caseInsensitive])
        } catch {
            throw .invalid(Self.describe(error))
        }
        self.pattern = pattern
        self.requirement = RegexPrefilter.requirement(for: pattern)
    }

    /// Texts longer than this are matched with ICU's progress callback, which lets a slow match stop at the
    /// deadline; it costs a few microseconds per regex, so short texts (nearly every chat), where the shapes
    /// refused at load cannot take long, go without it.
    static let progressCheckedLength = 256

    /// Matches in the first `length` UTF-16 units of `text`, as UTF-16 ranges, found before `deadline`: on a long
    /// text a match still running then is abandoned (ICU calls back while it works).
    func matches(in text: String, length: Int, deadline: ContinuousClock.Instant) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        let options: NSRegularExpression.MatchingOptions = length > Self.progressCheckedLength ? [.reportProgress] : []
        expression.enumerateMatches(in: text, options: options, range: NSRange(location: 0, length: length)) { result, _, stop in
            // Only a search still running is abandoned; a match found is always kept, however late (a machine
            // busy elsewhere must not change the analysis).
            guard let range = result?.range, range.location != NSNotFound else {
                if ContinuousClock.now > deadline { stop.pointee = true }
                return
            }
            ranges.append(range.location..<(range.location + range.length))
            if ranges.count == Self.maxMatches { stop.pointee = true }
        }
        return ranges
    }

    /// The shapes that backtrack exponentially on a near miss: a group that repeats without bound and contains
    /// something that also repeats without bound (`(a+)+`, `(\w*x)*`), or an alternation (`(a|aa)+`, whose
    /// overlapping branches can split the same text in exponentially many ways).
    static func riskyShape(_ pattern: String) -> Problem? {
        let chars = Array(pattern.unicodeScalars)
        var groupHasUnbounded: [Bool] = []
        var groupHasAlternation: [Bool] = []
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
                groupHasAlternation.append(false)
            case "|":
                if !groupHasAlternation.isEmpty { groupHasAlternation[groupHasAlternation.count - 1] = true }
            case ")":
                lastClosedGroupHadUnbounded = groupHasUnbounded.popLast() ?? false
                let hadAlternation = groupHasAlternation.popLast() ?? false
                if unboundedQuantifier(at: i + 1) {
                    if lastClosedGroupHadUnbounded { return .nestedQuantifier }
                    if hadAlternation { return .quantifiedAlternation }
                    markUnbounded()
                } else if lastClosedGroupHadUnbounded {
                    markUnbounded()
                }
            default:
                if unboundedQuantifier(at: i + 1), c != "*", c != "+", c != "?" { markUnbounded() }
            }
            i += 1
        }
        return nil
    }

    private static func describe(_ error: Error) -> String {
        let nsError = error as NSError
        if let reason = nsError.userInfo["NSInvalidValue"] as? String { return "invalid pattern \(reason)" }
        return "the pattern does not compile"
    }
}
