/// Takes secrets out of text bound for logs and messages, without needing it to parse.
public enum Redaction {
    /// `text` with the user information of every URL in it replaced: `postgres://hr:s3cret@db/hr` →
    /// `postgres://***@db/hr`. Works on any text (a log line, a URL that does not parse): each `://` is followed
    /// to the end of its authority, and whatever stands before the last `@` there goes.
    public static func credentials(in text: String) -> String {
        guard text.contains("://") else { return text }
        var result = ""
        var rest = Substring(text)
        while let scheme = rest.range(of: "://") {
            result += rest[..<scheme.upperBound]
            rest = rest[scheme.upperBound...]
            let end = rest.firstIndex { "/?# \t\n\"'<>".contains($0) } ?? rest.endIndex
            let authority = rest[..<end]
            if let at = authority.lastIndex(of: "@") {
                result += "***" + authority[at...]
            } else {
                result += authority
            }
            rest = rest[end...]
        }
        return result + rest
    }
}
