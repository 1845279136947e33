import NIOCore
import Synchronization

/// Tells when the client closed its side of the connection (or the connection closed), without reading the
/// inbound stream. Hummingbird's `consumeWithCancellationOnInboundClose` reads it, and cancelling that read
/// ends the connection's inbound stream, so the connection could not carry another request: keep-alive
/// (browsers, nginx's upstream keepalive) broke after every stream. This handler sits first in the pipeline
/// for the life of one stream and only watches events going past.
final class InboundCloseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let onClose: @Sendable () -> Void

    init(onClose: @escaping @Sendable () -> Void) {
        self.onClose = onClose
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed? = event as? ChannelEvent { onClose() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        onClose()
        context.fireErrorCaught(error)
    }
}

extension Channel {
    /// Runs `body`, cancelling the current task at once, from the event loop, when the client closes its side
    /// or the connection ends. Cancelling from the event loop (not from a task that would first have to be
    /// scheduled) stops the upstream call and tools within milliseconds even when every core is busy.
    func cancellingOnInboundClose<T>(_ body: () async throws -> T) async throws -> T {
        let handle = CurrentTaskHandle()
        let name = "switchboard.inbound-close.\(UInt64.random(in: 0...UInt64.max))"
        let channel = self
        try await eventLoop.submit {
            if !channel.isActive { handle.cancel() }
            try channel.pipeline.syncOperations.addHandler(InboundCloseHandler { handle.cancel() }, name: name, position: .first)
        }.get()
        let outcome: Result<T, any Error>
        do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
        // Forgotten before this function returns, so the task is never touched after it ends.
        handle.forget()
        try? await pipeline.removeHandler(name: name).get()
        return try outcome.get()
    }
}

/// The running task, to cancel it from another thread while it runs.
private final class CurrentTaskHandle: Sendable {
    private let task: Mutex<UnsafeCurrentTask?>

    init() {
        task = Mutex(withUnsafeCurrentTask { $0 })
    }

    func cancel() {
        task.withLock { $0?.cancel() }
    }

    func forget() {
        task.withLock { $0 = nil }
    }
}
