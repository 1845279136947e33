import Foundation
import Synchronization

/// A stream's place in the quotas, given back with `QuotaStore.release` when the stream ends.
public struct StreamSlot: Sendable, Equatable {
    public let key: String
    /// The shared store's row for the slot; `nil` where there is none (in memory, or no per-key limit).
    public let id: Int64?

    public init(key: String, id: Int64?) {
        self.key = key
        self.id = id
    }
}

/// What a stream's admission checks, in one step: the key's request bucket (when the request was not counted
/// yet), its daily output budget, its concurrent streams, and this instance's streams.
public struct AdmissionRequest: Sendable {
    public var key: String
    /// Take one request from the key's bucket of this many per minute.
    public var requestsPerMinute: Int?
    public var outputTokensPerDay: Int?
    /// The UTC day (days since 1970-01-01) the budget is for.
    public var day: Int
    public var concurrentStreams: Int?
    /// The streams this instance may hold open.
    public var serverLimit: Int

    public init(key: String, requestsPerMinute: Int? = nil, outputTokensPerDay: Int? = nil, day: Int,
                concurrentStreams: Int? = nil, serverLimit: Int) {
        self.key = key
        self.requestsPerMinute = requestsPerMinute
        self.outputTokensPerDay = outputTokensPerDay
        self.day = day
        self.concurrentStreams = concurrentStreams
        self.serverLimit = serverLimit
    }
}

/// Whether a stream may open.
public enum StreamAdmission: Sendable, Equatable {
    case admitted(StreamSlot)
    /// The key's requests per minute are used up; one is back after this long.
    case rateLimited(retryAfter: Duration)
    /// The key's output tokens for the day are spent.
    case budgetExhausted
    /// The key has as many streams open as it may.
    case keyFull
    /// This instance has as many streams open as it may.
    case serverFull
}

/// The counters quotas are enforced with: `InMemoryQuotaStore` for one instance, `PostgresQuotaStore` for several
/// sharing one database. Nothing here runs per event: at most one call per request, and the ends of streams
/// (releases, spent tokens) are told without waiting, for the store to write in batches.
public protocol QuotaStore: Sendable {
    /// Takes one request from `key`'s token bucket (`perMinute` tokens, refilled evenly over a minute): `nil`
    /// when allowed, else how long until a token is back.
    func takeRequest(key: String, perMinute: Int) async throws -> Duration?
    /// Everything a stream's admission checks, in one step (for a shared store, one round trip).
    func admit(_ request: AdmissionRequest) async throws -> StreamAdmission
    /// The stream of `slot` ended (told without waiting; a shared store writes it with its next batch).
    func release(_ slot: StreamSlot)
    /// The stream of `slot` ended, and no instance may count it once this returns: a stream gives its slot back
    /// this way before its last bytes are written, so its client's next chat never meets it.
    func releaseNow(_ slot: StreamSlot) async
    /// `key` spent `count` output tokens on UTC day `day`.
    func addOutputTokens(_ count: Int, key: String, day: Int)
    /// The output tokens `key` spent on UTC day `day`, everything this instance charged included.
    func outputTokens(key: String, day: Int) async throws -> Int
}

extension QuotaStore {
    public func releaseNow(_ slot: StreamSlot) async {
        release(slot)
    }
}

/// Today's UTC day number and the time until it ends.
func utcToday(_ now: Date = Date()) -> (day: Int, remaining: Duration) {
    let seconds = now.timeIntervalSince1970
    let day = Int(seconds / 86_400)
    return (day, .seconds(Double(day + 1) * 86_400 - seconds))
}

/// A token bucket's arithmetic, shared by the stores: `capacity` tokens, refilled evenly over a minute.
struct TokenBucket {
    var tokens: Double
    var updated: ContinuousClock.Instant

    /// Refills to `now` and takes a token: `nil` when taken, else the wait until one is back.
    mutating func take(perMinute: Int, now: ContinuousClock.Instant) -> Duration? {
        let capacity = Double(perMinute)
        let perSecond = capacity / 60
        tokens = min(capacity, tokens + max(0, (now - updated).inSeconds) * perSecond)
        updated = now
        guard tokens >= 1 else { return .seconds((1 - tokens) / perSecond) }
        tokens -= 1
        return nil
    }
}

/// Quotas for one instance, in memory. Each operation takes one lock briefly.
public final class InMemoryQuotaStore: QuotaStore {
    private struct State {
        var openByKey: [String: Int] = [:]
        var open = 0
        var buckets: [String: TokenBucket] = [:]
        /// Output tokens by key, for `day` only: a new day starts from zero.
        var day = 0
        var tokens: [String: Int] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public func takeRequest(key: String, perMinute: Int) -> Duration? {
        let now = ContinuousClock.now
        return state.withLock { state in
            var bucket = state.buckets[key] ?? TokenBucket(tokens: Double(perMinute), updated: now)
            defer { state.buckets[key] = bucket }
            return bucket.take(perMinute: perMinute, now: now)
        }
    }

    public func admit(_ request: AdmissionRequest) -> StreamAdmission {
        if let perMinute = request.requestsPerMinute, let wait = takeRequest(key: request.key, perMinute: perMinute) {
            return .rateLimited(retryAfter: wait)
        }
        return state.withLock { state in
            if let budget = request.outputTokensPerDay,
               (state.day == request.day ? state.tokens[request.key, default: 0] : 0) >= budget {
                return .budgetExhausted
            }
            if let limit = request.concurrentStreams, state.openByKey[request.key, default: 0] >= limit { return .keyFull }
            if state.open >= request.serverLimit { return .serverFull }
            state.openByKey[request.key, default: 0] += 1
            state.open += 1
            return .admitted(StreamSlot(key: request.key, id: nil))
        }
    }

    public func release(_ slot: StreamSlot) {
        state.withLock { state in
            state.open -= 1
            let remaining = state.openByKey[slot.key, default: 1] - 1
            state.openByKey[slot.key] = remaining > 0 ? remaining : nil
        }
    }

    public func outputTokens(key: String, day: Int) -> Int {
        state.withLock { $0.day == day ? $0.tokens[key, default: 0] : 0 }
    }

    public func addOutputTokens(_ count: Int, key: String, day: Int) {
        guard count > 0 else { return }
        state.withLock { state in
            if state.day != day {
                state.day = day
                state.tokens = [:]
            }
            state.tokens[key, default: 0] += count
        }
    }
}
