/// Lets code deep inside a producer (a model call) have the producer's owner stop it at a deadline, so the
/// deadline holds even while that code waits on something no timer of its own can interrupt (the next chunk of a
/// silent upstream). The owner (the server's event stream) hands a keeper down with its `EventSink`; when an
/// armed deadline passes, the owner cancels the producer and reports the error. With `.none`, `enforcing` just
/// runs its body, and the caller's own checks are all there is.
public struct DeadlineKeeper: Sendable {
    private let arm: (@Sendable (Duration, StreamError) -> Void)?
    private let disarm: (@Sendable () -> Void)?

    /// A keeper whose `arm` starts a timer that stops the producer with the error, and whose `disarm` stops the
    /// timer. One deadline is armed at a time.
    public init(arm: @escaping @Sendable (Duration, StreamError) -> Void, disarm: @escaping @Sendable () -> Void) {
        self.arm = arm
        self.disarm = disarm
    }

    private init() {
        arm = nil
        disarm = nil
    }

    /// No keeper: deadlines are the producer's own to check.
    public static let none = DeadlineKeeper()

    /// Runs `body`; if it still runs after `limit`, the owner stops the producer with `error`.
    public func enforcing<T>(_ limit: Duration, error: @autoclosure () -> StreamError,
                             _ body: () async throws -> T) async rethrows -> T {
        guard let arm, let disarm else { return try await body() }
        arm(limit, error())
        defer { disarm() }
        return try await body()
    }
}
