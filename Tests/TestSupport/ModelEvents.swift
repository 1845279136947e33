import ChatCore
import Synchronization

/// Collects the events a model call reported, from whichever thread reports them.
public final class Seen: Sendable {
    private let events = Mutex<[ModelStreamEvent]>([])

    public init() {}

    public func record(_ event: ModelStreamEvent) { events.withLock { $0.append(event) } }

    public var all: [ModelStreamEvent] { events.withLock { $0 } }
}
