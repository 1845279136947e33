import ChatCore
import Foundation
import Logging
import ServiceLifecycle
import Storage
import Synchronization

/// Quotas shared by every instance on one PostgreSQL database (`--database postgres://…`): a key's requests per
/// minute, concurrent streams and daily output tokens hold across instances, while each instance keeps its own
/// server-wide stream limit.
///
/// - A request or a stream's admission is **one round trip**: `switchboard_admit(…)`, a PL/pgSQL function that
///   takes the key's request token (a token bucket row, locked), checks the day's budget, and takes a stream slot
///   under a per-key advisory lock (so two instances never both take the last slot). It also applies, first,
///   what this instance still owed that key (slots to give back, tokens spent), so a key at its limit that ends a
///   stream may open the next one at once.
/// - **Slots live on their instance's lease.** Each slot row names the process that holds it; each process has
///   one lease row, renewed (one row, one statement) every third of `lease`. A slot counts while its process's
///   lease runs, so the slots of an instance that died (SIGKILL, a lost machine) stop counting within a lease and
///   a key is never locked out by a crash; the renewals cost one row per instance, however many streams it holds.
///   Dead processes' rows are purged every minute; a process that stops cleanly removes its own.
/// - **Ends of streams are batched.** `release` and `addOutputTokens` only append to memory; the service writes
///   them every `flushInterval` (one transaction) and at shutdown. Nothing here runs per event.
public final class PostgresQuotaStore: QuotaStore, Service {
    public struct Settings: Sendable {
        /// How long a slot counts after its last renewal: the longest a dead instance's streams hold a key's slots.
        public var lease: Duration = .seconds(30)
        /// How often ended streams' slots and spent tokens are written.
        public var flushInterval: Duration = .milliseconds(100)
        /// The longest one call waits for PostgreSQL (a connection included): past it the call fails, and the
        /// request is refused `503 quotas_unavailable` in seconds rather than after the driver's own timeouts.
        public var timeout: Duration = .seconds(3)

        public init() {}
    }

    private struct Pending {
        var releases: [String: [Int64]] = [:]
        var tokens: [TokenKey: Int] = [:]
        var isEmpty: Bool { releases.isEmpty && tokens.isEmpty }
    }

    private struct TokenKey: Hashable {
        let key: String
        let day: Int
    }

    private let database: any SQLDatabase
    /// The process holding the slots: the instance id and a random part, so a restarted instance with the same id
    /// never renews the slots of its dead predecessor.
    let owner: String
    private let settings: Settings
    private let logger: Logger
    private let pending = Mutex(Pending())
    /// This instance's open streams, for its own limit.
    private let local = Mutex(0)

    public init(database: any SQLDatabase, instance: String, settings: Settings = Settings(), logger: Logger) {
        self.database = database
        self.owner = instance + ":" + UUID().uuidString.prefix(8).lowercased()
        self.settings = settings
        self.logger = logger
    }

    /// How often dead processes' rows are purged; rows are dead a minute after their lease ran out.
    static let purgeInterval: Duration = .seconds(60)
    /// The advisory lock instances take turns on while preparing the schema (any number no other code uses).
    static let schemaLockKey = 727_100

    // MARK: QuotaStore

    public func takeRequest(key: String, perMinute: Int) async throws -> Duration? {
        let request = AdmissionRequest(key: key, requestsPerMinute: perMinute, day: utcToday().day, serverLimit: .max)
        let outcome = try await call(request, admit: false)
        if case .rateLimited(let wait) = outcome { return wait }
        return nil
    }

    public func admit(_ request: AdmissionRequest) async throws -> StreamAdmission {
        let full = local.withLock { open in
            guard open < request.serverLimit else { return true }
            open += 1
            return false
        }
        if full { return .serverFull }
        let outcome: StreamAdmission
        do {
            outcome = try await call(request, admit: true)
        } catch {
            local.withLock { $0 -= 1 }
            throw error
        }
        if case .admitted = outcome { return outcome }
        local.withLock { $0 -= 1 }
        return outcome
    }

    public func release(_ slot: StreamSlot) {
        local.withLock { $0 -= 1 }
        guard let id = slot.id else { return }
        pending.withLock { $0.releases[slot.key, default: []].append(id) }
    }

    /// Gives the slot back in PostgreSQL before returning, with the tokens the stream's calls spent, so no instance
    /// counts a stream that has ended or misses what it cost; if PostgreSQL does not answer in time, they wait for
    /// the next flush.
    public func releaseNow(_ slot: StreamSlot) async {
        release(slot)
        let day = utcToday().day
        let owes = pending.withLock { $0.releases[slot.key] != nil || $0.tokens[TokenKey(key: slot.key, day: day)] != nil }
        guard owes else { return }
        _ = try? await call(AdmissionRequest(key: slot.key, day: day, serverLimit: .max), admit: false)
    }

    public func addOutputTokens(_ count: Int, key: String, day: Int) {
        guard count > 0 else { return }
        pending.withLock { $0.tokens[TokenKey(key: key, day: day), default: 0] += count }
    }

    /// What this instance owes the key is written first (one round trip, as `releaseNow` does), then the day's
    /// total is read (a second).
    public func outputTokens(key: String, day: Int) async throws -> Int {
        _ = try await call(AdmissionRequest(key: key, day: day, serverLimit: .max), admit: false)
        let database = database
        let rows = try await withTimeout(settings.timeout) {
            try await database.fetch("SELECT output_tokens FROM switchboard_daily_tokens WHERE key_id = ?::text AND day = ?::int",
                                     [.text(key), .int(Int64(day))])
        }
        guard let rows else { throw QuotaStoreError("PostgreSQL did not answer within \(settings.timeout)") }
        return rows.first?["output_tokens"]?.int ?? 0
    }

    /// One round trip: what this instance owes the key first, then the request token, the budget and the slot.
    /// `admit: false`: the request bucket only.
    private func call(_ request: AdmissionRequest, admit: Bool) async throws -> StreamAdmission {
        let key = request.key, day = request.day
        let (releases, owed) = pending.withLock { pending -> ([Int64], Int) in
            let releases = pending.releases.removeValue(forKey: key) ?? []
            let owed = pending.tokens.removeValue(forKey: TokenKey(key: key, day: day)) ?? 0
            return (releases, owed)
        }
        let rows: [SQLRow]
        do {
            let database = database, owner = owner, lease = settings.lease
            let answer = try await withTimeout(settings.timeout) {
                try await database.fetch(
                "SELECT outcome, slot, wait_seconds FROM switchboard_admit(?::text, ?::text, ?::int, ?::bigint, ?::int, ?::int, "
                    + "?::float8, ?::text, ?::bigint, ?::boolean)",
                [.text(key), .text(owner), request.requestsPerMinute.map { .int(Int64($0)) } ?? .null,
                 request.outputTokensPerDay.map { .int(Int64($0)) } ?? .null, .int(Int64(day)),
                 request.concurrentStreams.map { .int(Int64($0)) } ?? .null, .double(lease.inSeconds),
                 .text(releases.map(String.init).joined(separator: ",")), .int(Int64(owed)), .text(admit ? "true" : "false")])
            }
            guard let answer else { throw QuotaStoreError("PostgreSQL did not answer within \(settings.timeout)") }
            rows = answer
        } catch {
            // Not applied: owed again, for the next call or the next flush.
            pending.withLock { pending in
                if !releases.isEmpty { pending.releases[key, default: []] += releases }
                if owed > 0 { pending.tokens[TokenKey(key: key, day: day), default: 0] += owed }
            }
            logger.warning("the shared quota store did not answer", metadata: ["error": "\(String(reflecting: error))"])
            throw error
        }
        guard let row = rows.first, let outcome = row["outcome"]?.text else {
            throw QuotaStoreError("switchboard_admit returned no row")
        }
        switch outcome {
        case "admitted": return .admitted(StreamSlot(key: key, id: row["slot"]?.int.map(Int64.init)))
        case "rate_limited":
            let wait = row["wait_seconds"]?.double.flatMap { $0.isFinite ? min(max($0, 0), 3600) : nil } ?? 1
            return .rateLimited(retryAfter: .milliseconds(Int64((wait * 1000).rounded(.up))))
        case "budget_exhausted": return .budgetExhausted
        case "key_full": return .keyFull
        default: throw QuotaStoreError("switchboard_admit returned \(outcome)")
        }
    }

    // MARK: Service: flush, renew, purge

    public func run() async throws {
        let clock = ContinuousClock()
        var nextRenewal = clock.now + settings.lease / 3
        var nextPurge = clock.now + Self.purgeInterval
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: settings.flushInterval)
            await flush()
            if clock.now >= nextRenewal {
                nextRenewal = clock.now + settings.lease / 3
                await renew()
            }
            if clock.now >= nextPurge {
                nextPurge = clock.now + Self.purgeInterval
                await purge()
            }
        }
        // The streams have drained (the server stops before this service): write what they left, and go.
        await flush()
        await retire()
    }

    /// Writes ended streams' releases and spent tokens in one transaction; on failure they wait for the next.
    func flush() async {
        let taken = pending.withLock { pending -> Pending in
            defer { pending = Pending() }
            return pending
        }
        guard !taken.isEmpty else { return }
        var statements: [(sql: String, arguments: [SQLValue])] = []
        let ids = taken.releases.values.flatMap { $0 }
        if !ids.isEmpty {
            statements.append(("DELETE FROM switchboard_quota_slots WHERE id = ANY (string_to_array(?, ',')::bigint[])",
                               [.text(ids.map(String.init).joined(separator: ","))]))
        }
        for (key, count) in taken.tokens {
            statements.append(("INSERT INTO switchboard_daily_tokens AS d (key_id, day, output_tokens) VALUES (?, ?, ?) "
                                + "ON CONFLICT (key_id, day) DO UPDATE SET output_tokens = d.output_tokens + EXCLUDED.output_tokens",
                               [.text(key.key), .int(Int64(key.day)), .int(Int64(count))]))
        }
        do {
            try await database.transaction(statements)
        } catch {
            pending.withLock { pending in
                for (key, ids) in taken.releases { pending.releases[key, default: []] += ids }
                for (key, count) in taken.tokens { pending.tokens[key, default: 0] += count }
            }
            logger.warning("could not write ended streams to the shared quota store; will retry",
                           metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// Extends this process's lease, and with it every slot it holds.
    func renew() async {
        do {
            try await database.transaction([(
                "INSERT INTO switchboard_quota_owners (owner, expires_at) VALUES (?, clock_timestamp() + ? * interval '1 second') "
                    + "ON CONFLICT (owner) DO UPDATE SET expires_at = EXCLUDED.expires_at",
                [.text(owner), .double(settings.lease.inSeconds)])])
        } catch {
            logger.warning("could not renew this instance's stream slots", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// Removes the rows of processes whose lease ran out a minute ago.
    private func purge() async {
        try? await database.transaction([
            ("DELETE FROM switchboard_quota_slots WHERE owner IN (SELECT owner FROM switchboard_quota_owners "
                + "WHERE expires_at < clock_timestamp() - interval '60 seconds')", []),
            ("DELETE FROM switchboard_quota_owners WHERE expires_at < clock_timestamp() - interval '60 seconds'", []),
        ])
    }

    /// A clean stop: this process's lease and any slot left with it go at once.
    private func retire() async {
        try? await database.transaction([
            ("DELETE FROM switchboard_quota_slots WHERE owner = ?", [.text(owner)]),
            ("DELETE FROM switchboard_quota_owners WHERE owner = ?", [.text(owner)]),
        ])
    }

    // MARK: Schema

    /// Creates the tables and the function (idempotent; instances starting together take turns on an advisory lock).
    /// The shared quotas' tables and functions, prepared as a PostgreSQL database opens.
    public static let databaseSchema = DatabaseSchema(name: "quotas") { database in
        try await database.transaction(schema.map { ($0, []) })
        return nil
    }

    static let schema: [String] = [
        "SELECT pg_advisory_xact_lock(\(schemaLockKey))",
        """
        CREATE TABLE IF NOT EXISTS switchboard_quota_owners (owner TEXT PRIMARY KEY, expires_at TIMESTAMPTZ NOT NULL)
        """,
        """
        CREATE TABLE IF NOT EXISTS switchboard_quota_slots (
            id BIGSERIAL PRIMARY KEY, key_id TEXT NOT NULL, owner TEXT NOT NULL)
        """,
        "CREATE INDEX IF NOT EXISTS switchboard_quota_slots_key ON switchboard_quota_slots (key_id)",
        "CREATE INDEX IF NOT EXISTS switchboard_quota_slots_owner ON switchboard_quota_slots (owner)",
        """
        CREATE TABLE IF NOT EXISTS switchboard_rate_buckets (
            key_id TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, updated_at TIMESTAMPTZ NOT NULL)
        """,
        """
        CREATE TABLE IF NOT EXISTS switchboard_daily_tokens (
            key_id TEXT NOT NULL, day INTEGER NOT NULL, output_tokens BIGINT NOT NULL, PRIMARY KEY (key_id, day))
        """,
        """
        CREATE OR REPLACE FUNCTION switchboard_admit(p_key text, p_owner text, p_per_minute int, p_budget bigint, p_day int,
            p_stream_limit int, p_lease float8, p_release text, p_owed bigint, p_admit boolean)
        RETURNS TABLE (outcome text, slot bigint, wait_seconds float8) LANGUAGE plpgsql AS $fn$
        DECLARE
            v_tokens float8;
            v_spent bigint;
            v_open int;
            v_slot bigint;
        BEGIN
            IF p_release <> '' THEN
                DELETE FROM switchboard_quota_slots WHERE id = ANY (string_to_array(p_release, ',')::bigint[]);
            END IF;
            IF p_owed > 0 THEN
                INSERT INTO switchboard_daily_tokens AS d (key_id, day, output_tokens) VALUES (p_key, p_day, p_owed)
                    ON CONFLICT (key_id, day) DO UPDATE SET output_tokens = d.output_tokens + EXCLUDED.output_tokens;
            END IF;
            IF p_per_minute IS NOT NULL THEN
                INSERT INTO switchboard_rate_buckets (key_id, tokens, updated_at) VALUES (p_key, p_per_minute, clock_timestamp())
                    ON CONFLICT (key_id) DO NOTHING;
                SELECT LEAST(p_per_minute::float8,
                             b.tokens + GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at)) * p_per_minute / 60.0)
                    INTO v_tokens FROM switchboard_rate_buckets b WHERE b.key_id = p_key FOR UPDATE;
                IF v_tokens < 1 THEN
                    UPDATE switchboard_rate_buckets SET tokens = v_tokens, updated_at = clock_timestamp() WHERE key_id = p_key;
                    RETURN QUERY SELECT 'rate_limited'::text, NULL::bigint, (1 - v_tokens) * 60.0 / p_per_minute;
                    RETURN;
                END IF;
                UPDATE switchboard_rate_buckets SET tokens = v_tokens - 1, updated_at = clock_timestamp() WHERE key_id = p_key;
            END IF;
            IF NOT p_admit THEN
                RETURN QUERY SELECT 'admitted'::text, NULL::bigint, NULL::float8;
                RETURN;
            END IF;
            IF p_budget IS NOT NULL THEN
                SELECT t.output_tokens INTO v_spent FROM switchboard_daily_tokens t WHERE t.key_id = p_key AND t.day = p_day;
                IF COALESCE(v_spent, 0) >= p_budget THEN
                    RETURN QUERY SELECT 'budget_exhausted'::text, NULL::bigint, NULL::float8;
                    RETURN;
                END IF;
            END IF;
            IF p_stream_limit IS NULL THEN
                RETURN QUERY SELECT 'admitted'::text, NULL::bigint, NULL::float8;
                RETURN;
            END IF;
            PERFORM pg_advisory_xact_lock(hashtext('switchboard_quota_slots:' || p_key));
            SELECT count(*) INTO v_open FROM switchboard_quota_slots s JOIN switchboard_quota_owners o ON o.owner = s.owner
                WHERE s.key_id = p_key AND o.expires_at > clock_timestamp();
            IF v_open >= p_stream_limit THEN
                RETURN QUERY SELECT 'key_full'::text, NULL::bigint, NULL::float8;
                RETURN;
            END IF;
            -- This process's lease: made on its first slot, refreshed here only when half of it has run out (the
            -- renewals keep it otherwise), so admissions rarely write it.
            INSERT INTO switchboard_quota_owners AS o (owner, expires_at) VALUES (p_owner, clock_timestamp() + p_lease * interval '1 second')
                ON CONFLICT (owner) DO UPDATE SET expires_at = EXCLUDED.expires_at
                WHERE o.expires_at < clock_timestamp() + p_lease * interval '0.5 second';
            INSERT INTO switchboard_quota_slots (key_id, owner) VALUES (p_key, p_owner) RETURNING id INTO v_slot;
            RETURN QUERY SELECT 'admitted'::text, v_slot, NULL::float8;
        END
        $fn$
        """,
    ]
}

struct QuotaStoreError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
