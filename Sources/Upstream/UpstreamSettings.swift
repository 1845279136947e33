import NIOSSL

/// How long a model call may take, in its parts; the same for every provider.
public struct UpstreamTimeouts: Sendable {
    /// Establishing the connection (TCP and TLS).
    public var connect: Duration = .seconds(10)
    /// From sending the request to the response head.
    public var firstByte: Duration = .seconds(60)
    /// The longest silence between bytes of the stream; Anthropic pings every 15–30 s, so keep it above that.
    public var idle: Duration = .seconds(90)
    /// One model call from start to end, retries included.
    public var overall: Duration = .seconds(600)

    public init() {}
}

/// When a model call that failed before its stream began is tried again; the same for every provider.
public struct RetryPolicy: Sendable {
    /// Attempts in all, the first included.
    public var maxAttempts: Int = 3
    public var baseDelay: Duration = .milliseconds(500)
    public var maxDelay: Duration = .seconds(8)
    /// A `retry-after` longer than this is not waited for; the error is reported instead.
    public var maxRetryAfter: Duration = .seconds(60)

    public init() {}

    /// Where a server's `retry-after` is clamped: just past `maxRetryAfter`, so a longer wait still reads as too
    /// long to wait for, and no number converts past what a `Duration` holds.
    var hintCeiling: Duration { maxRetryAfter + .seconds(1) }

    /// The attempts a call may make: `maxAttempts`, or fewer when the call asks for fewer (`ModelRequest.maxAttempts`).
    func attempts(limit: Int?) -> Int {
        limit.map { max(1, min($0, maxAttempts)) } ?? maxAttempts
    }

    /// The pause before attempt `attempt + 1`: the server's `retry-after` when it gave one (`nil`: too long to
    /// wait), else exponential backoff from `baseDelay`, capped at `maxDelay`, with jitter.
    func delay(after attempt: Int, retryAfter: Duration?) -> Duration? {
        if let retryAfter { return retryAfter <= maxRetryAfter ? retryAfter : nil }
        let exponential = baseDelay * Int(1 << min(attempt - 1, 20))
        return min(exponential, maxDelay) * Double.random(in: 0.75...1)
    }
}

/// What every provider's client shares, from `SWITCHBOARD_UPSTREAM_*`: read whatever the providers are, so a
/// server with only OpenAI-compatible providers honours them too.
public struct UpstreamSettings: Sendable {
    public var timeouts = UpstreamTimeouts()
    /// Upstream HTTP/1.1 connections per host. Each open stream holds one, so this bounds concurrent streams.
    public var maxConnections = 1024
    /// Whether model call spans carry the messages (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`).
    public var captureContent = false
    /// A PEM file of certificate authorities trusted for `https` providers besides the system's
    /// (`SWITCHBOARD_UPSTREAM_CA_FILE`): a private CA in front of a local model server.
    public var caFile: String?

    public init() {}

    /// Why `path` cannot serve as `caFile` (unreadable, or no PEM certificate in it); `nil` when it can.
    public static func problem(withCAFile path: String) -> String? {
        do {
            let certificates = try NIOSSLCertificate.fromPEMFile(path)
            return certificates.isEmpty ? "\(path) holds no PEM certificate" : nil
        } catch {
            return "\(path) is not a readable PEM file of certificates"
        }
    }
}

/// What every provider's client configuration has for the shared transport (`StreamingHTTP`).
public protocol UpstreamConfiguration: Sendable {
    var timeouts: UpstreamTimeouts { get }
    var retry: RetryPolicy { get }
    /// Upstream HTTP/1.1 connections per host; each open stream holds one, so this bounds concurrent streams.
    var maxConnections: Int { get }
    /// Whether model call spans carry the messages sent and received (`ContentCapture`).
    var captureContent: Bool { get }
    /// A PEM file of certificate authorities trusted for `https` besides the system's (`UpstreamSettings.caFile`).
    var caFile: String? { get }
}
