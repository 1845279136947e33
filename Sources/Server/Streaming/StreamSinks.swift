import ChatCore
import NIOCore

/// A stream's events written to its connection (`EventStream`): the model's text and tool calls where the
/// upstream is read, when that is the connection's event loop and the connection takes them at once (`takeNow`);
/// the rest, and everything while the connection is full, by the pipeline's task (`take`). One JSON encoding and
/// one write per event. Smart routing's decision follows `session_start`.
///
/// The encoder decides the bytes: Switchboard's SSE, or an SDK's dialect (which may have nothing to say of an
/// event, and may answer a failure before the first byte with an HTTP error instead: `EventEncoding.answer`).
struct ConnectionSink<Encoding: EventEncoding>: EventSink {
    let stream: EventStream
    let tally: StreamTally
    let routing: RoutingDecision?
    let deadlines: DeadlineKeeper
    private let encoder: EncoderBox<Encoding>

    init(stream: EventStream, encoder: Encoding, tally: StreamTally, routing: RoutingDecision?) {
        self.stream = stream
        self.tally = tally
        self.routing = routing
        deadlines = stream.deadlines
        self.encoder = EncoderBox(encoder)
    }

    func takeNow(_ event: StreamEvent) throws -> Bool {
        guard try stream.writeNow({ ByteBuffer(bytes: encoder.encoder.bytes(for: event)) }) else { return false }
        tally.count(event, relayed: true)
        return true
    }

    func take(_ event: StreamEvent) async throws {
        if case .error(let error) = event, let answer = encoder.encoder.answer(for: error), try await stream.answerInstead(answer) {
            tally.count(event)
            return
        }
        try await write(event)
        tally.count(event)
        if let routing, case .sessionStart = event {
            try await write(.routing(routing))
            tally.count(.routing(routing))
        }
    }

    private func write(_ event: StreamEvent) async throws {
        let bytes = encoder.encoder.bytes(for: event)
        if !bytes.isEmpty { try await stream.write(ByteBuffer(bytes: bytes)) }
    }
}

/// A resumable stream's events appended to its session, where each reader (this connection, a resume) picks them
/// up. Appending never waits, so every event is taken where it is read. Kept without `accumulated`; each reader
/// adds it back (`ChatStream.subscribe`).
struct SessionSink: EventSink {
    let session: ResumableSession
    let tally: StreamTally
    let routing: RoutingDecision?
    let deadlines: DeadlineKeeper
    private let encoder = EncoderBox<SSEEncoder>(SSEEncoder(accumulated: false))

    init(session: ResumableSession, tally: StreamTally, routing: RoutingDecision?) {
        self.session = session
        self.tally = tally
        self.routing = routing
        deadlines = session.deadlines
    }

    func takeNow(_ event: StreamEvent) throws -> Bool {
        try append(event, relayed: true)
        return true
    }

    func take(_ event: StreamEvent) async throws {
        try append(event, relayed: false)
    }

    private func append(_ event: StreamEvent, relayed: Bool) throws {
        try session.append(ByteBuffer(bytes: encoder.encoder.encode(event)))
        tally.count(event, relayed: relayed)
        if let routing, case .sessionStart = event {
            try session.append(ByteBuffer(bytes: encoder.encoder.encode(.routing(routing))))
            tally.count(.routing(routing))
        }
    }
}

/// A stream's event encoder, shared by the two ways its events are written (where the upstream is read, and by
/// the pipeline's task). Used by one of them at a time: the task waits while the upstream's reader writes.
final class EncoderBox<Encoding: EventEncoding>: @unchecked Sendable {
    var encoder: Encoding

    init(_ encoder: Encoding) {
        self.encoder = encoder
    }
}
