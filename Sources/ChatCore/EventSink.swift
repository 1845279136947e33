/// Where a producer's events go, one at a time and in order, in one of two ways:
///
/// - `takeNow`, where the producer reads them (a model client on its connection's event loop): the event is
///   taken at once, without suspending, or refused (`false`: the sink is not on its consumer's thread, or its
///   consumer must wait). A relay through it wakes no task per event.
/// - `take`, on the producer's task, which waits as long as the consumer needs. Every event `takeNow` refused
///   goes here, before anything after it.
///
/// A thrown error ends the producer with that error. The sink also carries its owner's `deadlines`, so code deep
/// in the producer (a model call waiting on a silent upstream) can have the owner stop it on time.
public protocol EventSink<Event>: Sendable {
    associatedtype Event: Sendable

    /// Takes `event` at once, without suspending: `true` when it did, `false` when it cannot now.
    func takeNow(_ event: Event) throws -> Bool

    /// Takes `event`, waiting for the consumer.
    func take(_ event: Event) async throws

    /// Stops the producer at a deadline it cannot enforce itself; `.none` when the owner keeps none.
    var deadlines: DeadlineKeeper { get }
}

/// A sink whose consumer is a closure on the producer's task: nothing is taken now, every event is awaited.
public struct WaitingSink<Event: Sendable>: EventSink {
    private let handler: @Sendable (Event) async throws -> Void

    public init(_ handler: @escaping @Sendable (Event) async throws -> Void) {
        self.handler = handler
    }

    public func takeNow(_ event: Event) -> Bool { false }

    public func take(_ event: Event) async throws {
        try await handler(event)
    }

    public var deadlines: DeadlineKeeper { .none }
}
