import ChatCore
import Synchronization

/// The open streams by the key that opened them, so a key that is revoked (listed under `revoked:`, removed from
/// the keys file, or given a new secret) stops spending at once: when the keys are reloaded, each stream of a key
/// no longer in service ends with an `error` event (`key_revoked`), within the keys file's poll interval.
final class KeyedStreams: Sendable {
    private struct Entry {
        let key: String
        let digest: [UInt8]
        let stop: @Sendable (StreamError) -> Void
    }

    private let entries = Mutex<[Int: Entry]>([:])
    private let next = Atomic<Int>(0)

    static let revoked = StreamError(code: .keyRevoked, message: "The API key that opened this stream was revoked.", retryable: false)

    /// Watches a stream of `key`; `stop` ends it. The returned number lets it go (`forget`).
    func watch(_ key: APIKey, stop: @escaping @Sendable (StreamError) -> Void) -> Int {
        let id = next.add(1, ordering: .relaxed).newValue
        entries.withLock { $0[id] = Entry(key: key.id, digest: key.digest, stop: stop) }
        return id
    }

    func forget(_ id: Int) {
        _ = entries.withLock { $0.removeValue(forKey: id) }
    }

    /// Ends the streams whose key is not among `keys` (by id and secret).
    func endRevoked(keeping keys: [APIKey]) {
        let valid = Dictionary(keys.map { ($0.id, $0.digest) }, uniquingKeysWith: { first, _ in first })
        let stopped = entries.withLock { entries -> [Entry] in
            let gone = entries.filter { valid[$0.value.key] != $0.value.digest }
            for id in gone.keys { entries.removeValue(forKey: id) }
            return Array(gone.values)
        }
        for entry in stopped { entry.stop(Self.revoked) }
    }
}
