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
        /// A group whose length varies, repeated this many times.
        case repeatedVariableGroup(Int)
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

    /// Matches in the first `length` UTF-16 units of `text`, as UTF-16 ranges, found before `deadline`: a match
    /// still running then is abandoned (ICU calls back while it works), whatever the text's length: a shape the
    /// load-time check misses cannot hold a thread past the analysis' budget.
    func matches(in text: String, length: Int, deadline: ContinuousClock.Instant) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        expression.enumerateMatches(in: text, options: [.reportProgress], range: NSRange(location: 0, length: length)) { result, _, stop in
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
    /// overlapping branches can split the same text in exponentially many ways); and a group whose length varies
    /// (an optional or repeated part, an alternation) repeated a fixed number of times past
    /// `maxVariableRepeats` (`(?:a?){23}`), or past `maxUnboundedRepeats` when the part repeats without bound
    /// (`^(.*a){12}$`): each repetition multiplies the ways to split the text.
    static func riskyShape(_ pattern: String) -> Problem? {
        struct Group {
            var unbounded = false
            var variable = false
            var alternation = false
        }
        /// A quantifier: its largest count (`nil`: unbounded) and whether the count varies.
        struct Quantifier {
            var maximum: Int?
            var varies: Bool
        }
        let chars = Array(pattern.unicodeScalars)
        var groups: [Group] = []
        func quantifier(at index: Int) -> Quantifier? {
            guard index < chars.count else { return nil }
            switch chars[index] {
            case "*", "+": return Quantifier(maximum: nil, varies: true)
            case "?": return Quantifier(maximum: 1, varies: true)
            case "{":
                guard let brace = BraceQuantifier(chars, at: index), let minimum = brace.minimum else { return nil }
                guard let maximumText = brace.maximumText else { return Quantifier(maximum: minimum, varies: false) }
                if maximumText.isEmpty { return Quantifier(maximum: nil, varies: true) }
                guard let maximum = Int(maximumText) else { return nil }
                return Quantifier(maximum: maximum, varies: maximum != minimum)
            default: return nil
            }
        }
        /// An atom (a character, class or escape) ends at `index - 1`: its quantifier, if any, marks the group.
        func quantifiedAtom(before index: Int) {
            guard let quantifier = quantifier(at: index), !groups.isEmpty else { return }
            if quantifier.maximum == nil { groups[groups.count - 1].unbounded = true }
            if quantifier.varies { groups[groups.count - 1].variable = true }
        }
        var i = 0
        while i < chars.count {
            let c = chars[i]
            switch c {
            case "\\":
                i += 2
                quantifiedAtom(before: i)
                continue
            case "[":
                var j = i + 1
                if j < chars.count, chars[j] == "^" { j += 1 }
                if j < chars.count, chars[j] == "]" { j += 1 }
                while j < chars.count, chars[j] != "]" { j += chars[j] == "\\" ? 2 : 1 }
                i = j + 1
                quantifiedAtom(before: i)
                continue
            case "(":
                groups.append(Group())
                // `(?:`, `(?i)`, `(?=`: the `?` is the group's kind, not a quantifier.
                if i + 1 < chars.count, chars[i + 1] == "?" { i += 1 }
            case "|":
                if !groups.isEmpty { groups[groups.count - 1].alternation = true }
            case ")":
                let group = groups.popLast() ?? Group()
                let repeated = quantifier(at: i + 1)
                if let repeated {
                    if repeated.maximum == nil {
                        if group.unbounded { return .nestedQuantifier }
                        if group.alternation { return .quantifiedAlternation }
                    } else if let times = repeated.maximum {
                        if group.unbounded, times > Self.maxUnboundedRepeats { return .repeatedVariableGroup(times) }
                        if group.variable || group.alternation, times > Self.maxVariableRepeats { return .repeatedVariableGroup(times) }
                    }
                }
                if !groups.isEmpty {
                    // The group is a part of the one around it: its repetition and its varying length count there.
                    if group.unbounded || repeated?.maximum == nil && repeated != nil { groups[groups.count - 1].unbounded = true }
                    if group.variable || group.alternation || repeated?.varies == true { groups[groups.count - 1].variable = true }
                }
            default:
                if c != "*", c != "+", c != "?", c != "{" { quantifiedAtom(before: i + 1) }
            }
            i += 1
        }
        return nil
    }

    /// The most times a group whose length varies may be repeated by a fixed count (`(a|b){1,4}` is fine).
    static let maxVariableRepeats = 4
    /// The most times a group with an unbounded part may be repeated (`(\w+ ){2}` is fine).
    static let maxUnboundedRepeats = 2

    private static func describe(_ error: Error) -> String {
        let nsError = error as NSError
        if let reason = nsError.userInfo["NSInvalidValue"] as? String { return "invalid pattern \(reason)" }
        return "the pattern does not compile"
    }
}
