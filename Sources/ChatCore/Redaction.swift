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

    /// A provider's text with what could point at a secret or the inside of a network taken out: URLs, IP addresses
    /// (v4 and v6), `Bearer …` and key-like strings (`sk-…`, `sb_…`, `pk-…`, `rk-…`, `key-…`), at most `limit`
    /// characters. For log lines, and the one hint a client gets (a rejected request's reason).
    public static func upstreamText(_ text: String, limit: Int = 300) -> String {
        var result = text
        result.replace(/[A-Za-z][A-Za-z0-9+.\-]*:\/\/[^\s"'<>]+/, with: "[url]")
        result.replace(/(?i)bearer\s+[^\s"']+/, with: "Bearer [redacted]")
        result.replace(/(?i)\b(?:sk|sb|pk|rk|key)[-_][A-Za-z0-9_\-]{4,}/, with: "[key]")
        result.replace(/\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/, with: "[ip]")
        result.replace(/(?i)\[?\b[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\b\]?(?::\d+)?/, with: "[ip]")
        result.replace(/(?i)\b[A-Za-z0-9_\-]{32,}\b/, with: "[redacted]")
        return result.count > limit ? String(result.prefix(limit)) + "…" : result
    }
}
