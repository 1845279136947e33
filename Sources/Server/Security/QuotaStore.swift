import Foundation
import Synchronization

/// Whether a stream may open.
public enum StreamAdmission: Sendable, Equatable {
    case admitted
    /// The key has as many streams open as it may.
    case keyFull
    /// The server has as many streams open as it may.
    case serverFull
}

/// The counters quotas are enforced with. `InMemoryQuotaStore` serves one instance; a shared store (PostgreSQL,
/// Redis) can implement this for several instances behind one load balancer.
public protocol QuotaStore: Sendable {
    /// Takes a stream slot when `key` has fewer than `limit` open (no per-key limit when `nil`) and the server
    /// fewer than `serverLimit`.
    func openStream(key: String, limit: Int?, serverLimit: Int) -> StreamAdmission
    func closeStream(key: String)
    /// Takes one request from `key`'s token bucket (`perMinute` tokens, refilled evenly over a minute): `nil`
    /// when allowed, else how long until a token is back.
    func takeRequest(key: String, perMinute: Int, now: ContinuousClock.Instant) -> Duration?
    /// Output tokens `key` has spent on UTC day `day` (days since 1970-01-01).
    func outputTokens(key: String, day: Int) -> Int
    func addOutputTokens(_ count: Int, key: String, day: Int)
}

extension QuotaStore {
    /// Today's UTC day number and the time until it ends.
    static func today(_ now: Date = Date()) -> (day: Int, remaining: Duration) {
        let seconds = now.timeIntervalSince1970
        let day = Int(seconds / 86_400)
        return (day, .seconds(Double(day + 1) * 86_400 - seconds))
    }
}

/// Quotas for one instance, in memory. Each operation takes one lock briefly; nothing is per event.
public final class InMemoryQuotaStore: QuotaStore {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private struct State {
        var openByKey: [String: Int] = [:]
        var open = 0
        var buckets: [String: Bucket] = [:]
        /// Output tokens by key, for `day` only: a new day starts from zero.
        var day = 0
        var tokens: [String: Int] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public func openStream(key: String, limit: Int?, serverLimit: Int) -> StreamAdmission {
        state.withLock { state in
            if let limit, state.openByKey[key, default: 0] >= limit { return .keyFull }
            if state.open >= serverLimit { return .serverFull }
            state.openByKey[key, default: 0] += 1
            state.open += 1
            return .admitted
        }
    }

    public func closeStream(key: String) {
        state.withLock { state in
            state.open -= 1
            let remaining = state.openByKey[key, default: 1] - 1
            state.openByKey[key] = remaining > 0 ? remaining : nil
        }
    }

    public func takeRequest(key: String, perMinute: Int, now: ContinuousClock.Instant) -> Duration? {
        let capacity = Double(perMinute)
        let perSecond = capacity / 60
        return state.withLock { state in
            var bucket = state.buckets[key] ?? Bucket(tokens: capacity, updated: now)
            let elapsed = now - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(capacity, bucket.tokens + max(0, seconds) * perSecond)
            bucket.updated = now
            defer { state.buckets[key] = bucket }
            guard bucket.tokens >= 1 else { return .seconds((1 - bucket.tokens) / perSecond) }
            bucket.tokens -= 1
            return nil
        }
    }

    public func outputTokens(key: String, day: Int) -> Int {
        state.withLock { $0.day == day ? $0.tokens[key, default: 0] : 0 }
    }

    public func addOutputTokens(_ count: Int, key: String, day: Int) {
        state.withLock { state in
            if state.day != day {
                state.day = day
                state.tokens = [:]
            }
            state.tokens[key, default: 0] += count
        }
    }
}
