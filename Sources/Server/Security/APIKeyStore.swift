import Foundation
import Logging
import Routing
import Synchronization

/// The API keys in service: those of the keys file (swapped atomically on reload, the last good file kept when
/// a new one is broken) and those given in `SWITCHBOARD_API_KEYS`.
public final class APIKeyStore: Sendable {
    private struct State {
        var fileKeys: APIKeySet
        var fingerprint: String
        var rejection: [Diagnostic]?
    }

    /// Keys from the environment, fixed for the life of the process.
    let environmentKeys: [APIKey]
    /// The server's tools, which a reloaded file's `tools` must name.
    let knownTools: Set<String>?
    private let state: Mutex<State>
    /// The open streams by key: a reload that takes a key out of service ends them.
    let streams = KeyedStreams()

    /// `file`: the keys file's keys and fingerprint, when there is one.
    public init(file: (keys: APIKeySet, fingerprint: String)? = nil, environmentKeys: [APIKey] = [], knownTools: Set<String>? = nil) {
        self.environmentKeys = environmentKeys
        self.knownTools = knownTools
        state = Mutex(State(fileKeys: file?.keys ?? APIKeySet([]), fingerprint: file?.fingerprint ?? "", rejection: nil))
    }

    /// Keys given as text (`SWITCHBOARD_API_KEYS`), for a quick start: each gets the id `env-N` and admin rights
    /// (they are the operator's), with no limits but the server's.
    public static func environmentKeys(_ keys: [String]) -> [APIKey] {
        keys.enumerated().map { APIKey(id: "env-\($0.offset + 1)", digest: APIKey.digest(of: $0.element), admin: true) }
    }

    /// Every key in service.
    public var keys: APIKeySet {
        APIKeySet(state.withLock { $0.fileKeys.keys } + environmentKeys)
    }

    /// The key in service whose digest is the presented key's (see `APIKeySet.authenticate`).
    public func authenticate(_ presented: String) -> APIKey? {
        keys.authenticate(presented)
    }

    /// The last reload's problems, until a good file is loaded.
    public var lastRejection: [Diagnostic]? { state.withLock { $0.rejection } }

    func install(_ keys: APIKeySet, fingerprint: String) {
        state.withLock {
            $0.fileKeys = keys
            $0.fingerprint = fingerprint
            $0.rejection = nil
        }
        streams.endRevoked(keeping: keys.keys + environmentKeys)
    }
}

extension APIKeyStore {
    /// The keys file's fingerprint in service, or `nil` without a keys file.
    public var version: String? {
        let fingerprint = fingerprint
        return fingerprint.isEmpty ? nil : fingerprint
    }
}

extension APIKeyStore: ReloadTarget {
    public var fingerprint: String { state.withLock { $0.fingerprint } }
    public var isRejecting: Bool { lastRejection != nil }

    public func reload(yaml: String, fingerprint: String, path: String, logger: Logger) -> FileWatcher<APIKeyStore>.Outcome {
        let (keys, diagnostics) = APIKeysFile.load(yaml: yaml, path: path, knownTools: knownTools)
        guard let keys else {
            state.withLock { $0.rejection = diagnostics }
            let problems = diagnostics.map(\.description).joined(separator: "\n")
            logger.error("API keys not reloaded, keeping the last good keys:\n\(problems)", metadata: ["path": "\(path)"])
            return .rejected
        }
        install(keys, fingerprint: fingerprint)
        logger.info("API keys reloaded", metadata: ["path": "\(path)", "keys": "\(keys.keys.count)"])
        return .reloaded
    }

    public func refuse(_ diagnostic: Diagnostic, logger: Logger) {
        state.withLock { $0.rejection = [diagnostic] }
        logger.error("API keys not reloaded, keeping the last good keys", metadata: ["problem": "\(diagnostic)"])
    }
}
