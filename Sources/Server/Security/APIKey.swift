import Crypto
import Foundation

/// A client's key as the server knows it: an id for logs and metrics, the SHA-256 of the key (never the key),
/// what it may use, and its limits.
public struct APIKey: Sendable, Hashable {
    /// What one key may spend. `nil` means the server-wide limit alone applies.
    public struct Limits: Sendable, Hashable {
        public var concurrentStreams: Int?
        public var requestsPerMinute: Int?
        public var outputTokensPerDay: Int?
        public var maxTokens: Int?

        public init(concurrentStreams: Int? = nil, requestsPerMinute: Int? = nil, outputTokensPerDay: Int? = nil,
                    maxTokens: Int? = nil) {
            self.concurrentStreams = concurrentStreams
            self.requestsPerMinute = requestsPerMinute
            self.outputTokensPerDay = outputTokensPerDay
            self.maxTokens = maxTokens
        }
    }

    public let id: String
    /// SHA-256 of the key's text.
    public let digest: [UInt8]
    /// Routes it may be sent to by smart routing; `nil` for any.
    public let routes: Set<String>?
    /// Models it may ask for; `nil` for any the server allows.
    public let models: Set<String>?
    /// Tools its chats may use (only these are offered to the model, only these run); `nil` for all.
    public let tools: Set<String>?
    /// May read `/rules`, `/tools` and `/metrics`.
    public let admin: Bool
    public let limits: Limits

    public init(id: String, digest: [UInt8], routes: Set<String>? = nil, models: Set<String>? = nil, tools: Set<String>? = nil,
                admin: Bool = false, limits: Limits = Limits()) {
        self.id = id
        self.digest = digest
        self.routes = routes
        self.models = models
        self.tools = tools
        self.admin = admin
        self.limits = limits
    }

    /// The SHA-256 of a key's text, as the keys file stores it.
    public static func digest(of key: String) -> [UInt8] {
        Array(SHA256.hash(data: Data(key.utf8)))
    }

    /// A fresh random key: `sb_` and 43 characters of base64url (256 bits).
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let base64 = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return "sb_" + base64
    }
}

/// The keys in service.
public struct APIKeySet: Sendable {
    public let keys: [APIKey]

    public init(_ keys: [APIKey]) {
        self.keys = keys
    }

    public var isEmpty: Bool { keys.isEmpty }

    /// The key whose digest is the presented key's. Every stored digest is compared, each in constant time, so
    /// the time taken says nothing about which key (or how much of one) matched.
    public func authenticate(_ presented: String) -> APIKey? {
        let digest = APIKey.digest(of: presented)
        var found: APIKey?
        for key in keys where Self.constantTimeEqual(key.digest, digest) {
            found = key
        }
        return found
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
