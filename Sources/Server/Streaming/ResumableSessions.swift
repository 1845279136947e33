import ChatCore
import NIOCore
import Synchronization

/// The resumable streams (`"resumable": true`) the server is keeping: each session's events, encoded once, from
/// its first; who opened it; and how many bytes all of them hold, against the limits.
public final class ResumableSessions: Sendable {
    public struct Limits: Sendable {
        /// How long a session waits for its client to come back (and a finished one stays readable).
        public var grace: Duration = .seconds(60)
        /// The most bytes of events one session keeps.
        public var sessionBytes = 1 << 20
        /// The most bytes of events all sessions keep together.
        public var totalBytes = 64 << 20
        /// The most bytes the sessions of one key keep together (`nil`: a quarter of `totalBytes`), so one key
        /// cannot stop other keys' resumable chats by filling the server-wide buffer.
        public var keyBytes: Int?

        /// One key's share of the buffer.
        public var effectiveKeyBytes: Int { keyBytes ?? max(totalBytes / 4, 1) }

        public init() {}
    }

    private struct State {
        var sessions: [String: ResumableSession] = [:]
        var bytes = 0
        /// Bytes kept by each key's sessions (`""` for a server without keys).
        var bytesByKey: [String: Int] = [:]
    }

    let limits: Limits
    private let state = Mutex(State())

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    func open(id: String, owner: String?, accumulated: Bool = false, eventLoop: any EventLoop) -> ResumableSession {
        let session = ResumableSession(id: id, owner: owner, accumulated: accumulated, registry: self, eventLoop: eventLoop)
        state.withLock { $0.sessions[id] = session }
        return session
    }

    func session(_ id: String) -> ResumableSession? {
        state.withLock { $0.sessions[id] }
    }

    /// Takes `bytes` from the server-wide budget and from `owner`'s share of it; false when either is spent.
    func reserve(_ bytes: Int, owner: String?) -> Bool {
        state.withLock { state in
            let key = owner ?? ""
            guard state.bytes + bytes <= limits.totalBytes, state.bytesByKey[key, default: 0] + bytes <= limits.effectiveKeyBytes else {
                return false
            }
            state.bytes += bytes
            state.bytesByKey[key, default: 0] += bytes
            return true
        }
    }

    /// Adds `bytes` to the counts even past the limits (a stream's last, small event).
    func charge(_ bytes: Int, owner: String?) {
        state.withLock {
            $0.bytes += bytes
            $0.bytesByKey[owner ?? "", default: 0] += bytes
        }
    }

    func remove(_ session: ResumableSession, bytes: Int) {
        state.withLock { state in
            if state.sessions[session.id] === session { state.sessions[session.id] = nil }
            state.bytes -= bytes
            let key = session.owner ?? ""
            let left = state.bytesByKey[key, default: 0] - bytes
            state.bytesByKey[key] = left > 0 ? left : nil
        }
    }
}

/// One resumable stream: the producer (the agentic loop) appends each event; one subscriber at a time (the
/// connection that opened it, then each that resumes it) reads them from where it is. The producer never
/// waits for a subscriber, and a subscriber that resumes takes over from the one before.
final class ResumableSession: Sendable {
    struct Batch {
        var events: ArraySlice<ByteBuffer>
        /// Nothing more will come to this subscriber: the session finished and it has everything, or another
        /// subscriber took over, or it was cancelled.
        var done: Bool
    }

    private struct State {
        var events: [ByteBuffer] = []
        var bytes = 0
        var finished = false
        /// The current subscriber's number; each `attach` makes a new one.
        var generation = 0
        var attached = false
        var waiter: CheckedContinuation<Void, Never>?
        var cancelledGeneration = -1
        var expiry: Scheduled<Void>?
        var removed = false
        var deadline: Scheduled<Void>?
    }

    let id: String
    /// The key that opened it (`nil` on a server without keys); only it may resume.
    let owner: String?
    /// Whether its client asked for `accumulated`: the events are kept without it (a buffer that grows with the
    /// answer, not its square), and each subscriber adds it back as it writes them (`SSEAccumulator`).
    let accumulated: Bool
    /// Told when the producer must stop (nobody came back in time, a shutdown, a deadline) or has finished.
    let end = StreamEndSignal()
    private let registry: ResumableSessions
    private let eventLoop: any EventLoop
    private let state = Mutex(State())

    init(id: String, owner: String?, accumulated: Bool, registry: ResumableSessions, eventLoop: any EventLoop) {
        self.id = id
        self.owner = owner
        self.accumulated = accumulated
        self.registry = registry
        self.eventLoop = eventLoop
    }

    /// The number of events so far (the last one's id).
    var count: Int { state.withLock { $0.events.count } }

    /// Keeps one encoded event and wakes the subscriber. Past the session's or the server's buffer limit the
    /// event is refused (unless `force`: the last event, which says why the stream stopped).
    func append(_ bytes: ByteBuffer, force: Bool = false) throws(StreamError) {
        let size = bytes.readableBytes
        if force {
            registry.charge(size, owner: owner)
        } else {
            let fits = state.withLock { $0.bytes + size <= registry.limits.sessionBytes }
            guard fits, registry.reserve(size, owner: owner) else {
                throw StreamError(code: .resumeBufferFull, message: "The stream kept more events than its buffer holds "
                                  + "while its client was away; send the chat again.", retryable: true)
            }
        }
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.events.append(bytes)
            state.bytes += size
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// The first `count` events, for a subscriber that resumes after them and must rebuild `accumulated`.
    func events(upTo count: Int) -> ArraySlice<ByteBuffer> {
        state.withLock { $0.events.prefix(count) }
    }

    /// The producer is done: no more events.
    func finish() {
        let (waiter, attached) = state.withLock { state -> (CheckedContinuation<Void, Never>?, Bool) in
            state.finished = true
            defer { state.waiter = nil }
            return (state.waiter, state.attached)
        }
        waiter?.resume()
        // Readable for the grace period by a client that lost the tail; then gone.
        if !attached { scheduleRemoval() }
    }

    /// A subscriber takes the live side (one that was attached is told it is done); returns its number.
    func attach() -> Int {
        let (generation, waiter) = state.withLock { state -> (Int, CheckedContinuation<Void, Never>?) in
            state.generation += 1
            state.attached = true
            state.expiry?.cancel()
            state.expiry = nil
            defer { state.waiter = nil }
            return (state.generation, state.waiter)
        }
        waiter?.resume()
        return generation
    }

    /// The subscriber `generation` went away: unless another took over, the session waits `grace` for one, then
    /// stops (or, finished, is removed).
    func detach(_ generation: Int) {
        let finished: Bool? = state.withLock { state in
            guard state.generation == generation else { return nil }
            state.attached = false
            return state.finished
        }
        switch finished {
        case true?: scheduleRemoval()
        case false?:
            let timer = eventLoop.scheduleTask(in: TimeAmount(registry.limits.grace)) { [self] in
                guard state.withLock({ !$0.attached }) else { return }
                end.fire(.hungUp)
            }
            state.withLock { $0.expiry?.cancel(); $0.expiry = timer }
        case nil: break
        }
    }

    private func scheduleRemoval() {
        let timer = eventLoop.scheduleTask(in: TimeAmount(registry.limits.grace)) { [self] in
            let bytes = state.withLock { state -> Int? in
                guard !state.attached, !state.removed else { return nil }
                state.removed = true
                return state.bytes
            }
            if let bytes { registry.remove(self, bytes: bytes) }
        }
        state.withLock { $0.expiry?.cancel(); $0.expiry = timer }
    }

    /// The events after the first `index`, once there are any (or the session finished, or this subscriber was
    /// replaced or cancelled).
    func next(after index: Int, generation: Int) async -> Batch {
        while true {
            let ready = state.withLock { state -> Batch? in
                if state.generation != generation || state.cancelledGeneration == generation {
                    return Batch(events: [], done: true)
                }
                if state.events.count > index { return Batch(events: state.events[index...], done: false) }
                if state.finished { return Batch(events: [], done: true) }
                return nil
            }
            if let ready { return ready }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = state.withLock { state -> Bool in
                        if state.events.count > index || state.finished || state.generation != generation
                            || state.cancelledGeneration == generation { return true }
                        state.waiter = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
            } onCancel: {
                let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                    state.cancelledGeneration = generation
                    guard state.generation == generation else { return nil }
                    defer { state.waiter = nil }
                    return state.waiter
                }
                waiter?.resume()
            }
        }
    }

    /// The producer's deadlines: a model call's overall deadline stops it on time.
    var deadlines: DeadlineKeeper {
        DeadlineKeeper(arm: { [self] limit, error in
            let timer = eventLoop.scheduleTask(in: TimeAmount(limit)) { [end] in end.fire(.stopped(error)) }
            state.withLock { $0.deadline?.cancel(); $0.deadline = timer }
        }, disarm: { [self] in
            state.withLock { $0.deadline?.cancel(); $0.deadline = nil }
        })
    }
}
