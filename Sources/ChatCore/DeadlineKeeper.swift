/// Lets code deep inside a task (a model call) have the task's owner stop it at a deadline, so the deadline holds
/// even while that code waits on something no timer of its own can interrupt (the next chunk of a silent
/// upstream). The owner of the task (the server's event stream) provides a keeper as a task-local value; when an
/// armed deadline passes, the owner cancels the task and reports the error. Without a keeper, `enforcing` just
/// runs its body, and the caller's own checks are all there is.
public struct DeadlineKeeper: Sendable {
    @TaskLocal public static var current: DeadlineKeeper?

    private let arm: @Sendable (Duration, StreamError) -> Void
    private let disarm: @Sendable () -> Void

    /// A keeper whose `arm` starts a timer that stops the task with the error, and whose `disarm` stops the timer.
    public init(arm: @escaping @Sendable (Duration, StreamError) -> Void, disarm: @escaping @Sendable () -> Void) {
        self.arm = arm
        self.disarm = disarm
    }

    /// Runs `body`; if it still runs after `limit`, the current keeper's owner stops the task with `error`.
    public static func enforcing<T>(_ limit: Duration, error: @autoclosure () -> StreamError,
                                    _ body: () async throws -> T) async rethrows -> T {
        guard let keeper = current else { return try await body() }
        keeper.arm(limit, error())
        defer { keeper.disarm() }
        return try await body()
    }
}
