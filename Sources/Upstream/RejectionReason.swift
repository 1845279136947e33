/// Switchboard's words for why a model service rejected a request, read from the service's own message: a client
/// hears one of these sentences, never the provider's text (which goes to the server's log, redacted).
enum RejectionReason {
    /// `": …"` to append to "The model service rejected the request", or `""` when the message says nothing we
    /// recognise.
    static func hint(_ message: String?) -> String {
        guard let message = message?.lowercased() else { return "" }
        let tooLong = ["too long", "context length", "context window", "maximum context", "too many tokens", "prompt is too large"]
        if tooLong.contains(where: message.contains) { return ": the conversation is longer than the model accepts" }
        if message.contains("model"), message.contains("not found") || message.contains("does not exist") {
            return ": the model is not available there"
        }
        return ""
    }
}
