import Routing
import Yams

/// Reads the API keys file (YAML) with `file:line:col` diagnostics, as the rules file is read:
///
/// ```yaml
/// version: 1
/// keys:
///   - id: web-frontend
///     sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
///     routes: [fast, standard]
///     models: [claude-haiku-4-5]
///     tools: [get_employees, get_departments]
///     limits: { concurrent_streams: 4, requests_per_minute: 60, output_tokens_per_day: 200000, max_tokens: 4096 }
///   - { id: ops, sha256: …, admin: true }
/// revoked: [old-frontend]     # refused at once; `switchboard keys revoke ID` writes it
/// ```
public struct APIKeysFile: YAMLDiagnosing {
    public let path: String
    public var diagnostics: [Diagnostic] = []

    static let entryKeys = ["id", "sha256", "routes", "models", "tools", "admin", "limits"]
    /// Ids the server gives keys itself (`SWITCHBOARD_API_KEYS`' `env-N`, and `anonymous` for chats without a
    /// key): a file's key may not take them, or its quotas would be shared with theirs.
    static func isReserved(_ id: String) -> Bool {
        id == StreamTicket.anonymous || (id.hasPrefix("env-") && !id.dropFirst(4).isEmpty && id.dropFirst(4).allSatisfy(\.isNumber))
    }
    static let limitKeys = ["concurrent_streams", "requests_per_minute", "output_tokens_per_day", "max_tokens"]

    /// The tools a key's `tools` may name; `nil` where they are not known (`keys check`).
    public let knownTools: Set<String>?

    public init(path: String, knownTools: Set<String>? = nil) {
        self.path = path
        self.knownTools = knownTools
    }

    /// The keys of `yaml`, or `nil` with every problem in `diagnostics`. An empty list is allowed (nobody gets in).
    /// `knownTools`: the server's tools, which a key's `tools` must name.
    public static func load(yaml: String, path: String, knownTools: Set<String>? = nil) -> (keys: APIKeySet?, diagnostics: [Diagnostic]) {
        var file = APIKeysFile(path: path, knownTools: knownTools)
        let keys = file.parse(yaml)
        return (file.diagnostics.hasErrors ? nil : keys, file.diagnostics)
    }

    mutating func parse(_ yaml: String) -> APIKeySet? {
        guard let (root, items) = versionOneList(yaml, listKey: "keys", what: "list the keys (switchboard keys new NAME prints an entry)",
                                                 otherKeys: ["revoked"])
        else { return nil }
        // `revoked: [id, …]` (what `switchboard keys revoke ID` writes): those keys are refused from the next reload.
        var revoked: Set<String> = []
        if let node = root.mapping?["revoked"], let list = sequence(node, "revoked") {
            for item in list { if let id = string(item, "revoked") { revoked.insert(id) } }
        }
        var ids: Set<String> = []
        var digests: Set<[UInt8]> = []
        var keys: [APIKey] = []
        for (index, item) in items.enumerated() {
            guard let key = parseEntry(item, context: "key \(index + 1)") else { continue }
            if !ids.insert(key.id).inserted { error("key \"\(key.id)\": the id is used by another key", at: item) }
            if !digests.insert(key.digest).inserted { error("key \"\(key.id)\": the same key is listed twice", at: item) }
            if !revoked.contains(key.id) { keys.append(key) }
        }
        return APIKeySet(keys)
    }

    private mutating func parseEntry(_ item: Node, context: String) -> APIKey? {
        guard let fields = mapping(item, context) else { return nil }
        guard let idNode = fields["id"], let id = string(idNode, "\(context): id") else {
            if fields["id"] == nil { error("\(context): missing \"id\" (shown in logs and metrics)", at: item) }
            return nil
        }
        let context = "key \"\(id)\""
        if Self.isReserved(id) {
            error("\(context): the id \"\(id)\" is the server's own (env-N names SWITCHBOARD_API_KEYS' keys, anonymous the "
                  + "chats without a key); choose another", at: idNode)
        }
        checkKeys(fields, allowed: Self.entryKeys, context: context)
        guard let digestNode = fields["sha256"] else {
            error("\(context): missing \"sha256\" (the key's SHA-256; switchboard keys new prints it)", at: idNode)
            return nil
        }
        guard let hex = string(digestNode, "\(context): sha256") else { return nil }
        guard let digest = Self.bytes(hex: hex), digest.count == 32 else {
            error("\(context): sha256 must be 64 hexadecimal characters (the key's SHA-256, not the key)", at: digestNode)
            return nil
        }
        let routes = fields["routes"].flatMap { names($0, "\(context): routes") }
        let models = fields["models"].flatMap { names($0, "\(context): models") }
        var tools: Set<String>?
        if let toolsNode = fields["tools"], let items = sequence(toolsNode, "\(context): tools") {
            var named: Set<String> = []
            for item in items {
                guard let name = string(item, "\(context): tools") else { continue }
                if let knownTools, !knownTools.contains(name) {
                    error("\(context): tools: unknown tool \"\(name)\"; the server's tools are "
                          + knownTools.sorted().joined(separator: ", "), at: item)
                }
                named.insert(name)
            }
            tools = named
        }
        var admin = false
        if let adminNode = fields["admin"] {
            guard let flag = adminNode.bool else {
                error("\(context): admin: expected true or false, found \(describe(adminNode))", at: adminNode)
                return nil
            }
            admin = flag
        }
        var limits = APIKey.Limits()
        if let limitsNode = fields["limits"], let map = mapping(limitsNode, "\(context): limits") {
            checkKeys(map, allowed: Self.limitKeys, context: "\(context): limits")
            func limit(_ name: String) -> Int? { map[name].flatMap { integer($0, "\(context): limits.\(name)", minimum: 1) } }
            limits = APIKey.Limits(concurrentStreams: limit("concurrent_streams"), requestsPerMinute: limit("requests_per_minute"),
                                   outputTokensPerDay: limit("output_tokens_per_day"), maxTokens: limit("max_tokens"))
        }
        return APIKey(id: id, digest: digest, routes: routes, models: models, tools: tools, admin: admin, limits: limits)
    }

    private mutating func names(_ node: Node, _ what: String) -> Set<String>? {
        guard let items = sequence(node, what) else { return nil }
        return Set(items.compactMap { string($0, what) })
    }

    static func bytes(hex: String) -> [UInt8]? {
        let scalars = Array(hex.lowercased().unicodeScalars)
        guard scalars.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: scalars.count, by: 2) {
            guard let byte = UInt8(String(scalars[index]) + String(scalars[index + 1]), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
