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

    /// A provider's text with what could point at a secret, a person or the inside of a network taken out: URLs,
    /// e-mail addresses, host names, IP addresses (v4 and v6), file paths, `Bearer …`, `password=…` (and
    /// `secret`, `token`, `api_key`), AWS access key ids and key-like strings (`sk-…`, `sb_…`, `pk-…`, `rk-…`,
    /// `key-…`, any 32 or more letters and digits), at most `limit` characters. For the server's log only: a
    /// client hears Switchboard's own sentence.
    public static func upstreamText(_ text: String, limit: Int = 300) -> String {
        var result = String(text.unicodeScalars.prefix(limit * 4))
        result.replace(/[A-Za-z][A-Za-z0-9+.\-]*:\/\/[^\s"'<>]+/, with: "[url]")
        result.replace(/[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}/, with: "[email]")
        result.replace(/(?i)bearer\s+[^\s"']+/, with: "Bearer [redacted]")
        result.replace(/(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)\b(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&]+)/) { match in
            "\(match.output.1)\(match.output.2)[redacted]"
        }
        result.replace(/\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b/, with: "[key]")
        result.replace(/(?i)\b(?:sk|sb|pk|rk|key)[-_][A-Za-z0-9_\-]{4,}/, with: "[key]")
        result.replace(/\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/, with: "[ip]")
        result.replace(/(?i)\[?\b[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\b\]?(?::\d+)?/, with: "[ip]")
        result.replace(/(?i)\b(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63})\b(?::\d+)?/, with: "[host]")
        result.replace(/\b[A-Za-z]:\\[^\s"'<>]+|\\\\[^\s"'<>]+/, with: "[path]")
        result.replace(/(^|[\s"'(=,:])((?:~|\.{1,2})?(?:\/[A-Za-z0-9._\-]+){2,}\/?)/) { "\($0.output.1)[path]" }
        result.replace(/(?i)\b[A-Za-z0-9_\-]{32,}\b/, with: "[redacted]")
        return result.count > limit ? String(result.prefix(limit)) + "…" : result
    }

    /// A provider's request id as a client may be shown it, so it can be quoted to the operator: letters, digits and
    /// `._:-`, at most 128 characters; `nil` for anything else (it is the provider's text, and could carry anything).
    public static func requestId(_ id: String?) -> String? {
        guard let id, (1...128).contains(id.utf8.count),
              id.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || "._:-".utf8.contains($0) })
        else { return nil }
        return id
    }
}
