/// A `{n}`, `{n,}` or `{n,m}` quantifier in a regex pattern, read the same way by the nested-quantifier check
/// and the prefilter.
struct BraceQuantifier {
    /// The count before the comma; `nil` when it is not a number (`{,3}`, `{x}`).
    let minimum: Int?
    /// The text after the comma: `nil` without a comma (`{3}`), empty when unbounded (`{3,}`).
    let maximumText: Substring?
    /// The index just past the closing brace.
    let end: Int

    /// `{n,}`: no upper bound.
    var isUnbounded: Bool { maximumText?.isEmpty == true }

    /// The quantifier whose `{` is at `index`; `nil` when no `}` closes it.
    init?(_ chars: [Unicode.Scalar], at index: Int) {
        var end = index + 1
        var text = ""
        while end < chars.count, chars[end] != "}" {
            text.unicodeScalars.append(chars[end])
            end += 1
        }
        guard end < chars.count else { return nil }
        let parts = text.split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false)
        minimum = Int(parts[0])
        maximumText = parts.count > 1 ? parts[1] : nil
        self.end = end + 1
    }
}
