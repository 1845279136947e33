import Hummingbird
import NIOCore

/// The request context of every route: Hummingbird's core context plus the connection's channel, which the
/// stream watches to notice a client that went away.
public struct SwitchboardRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

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
    /// Runs `body` with `onClose` called when the client closes its side or the connection ends.
    func watchingInboundClose<T>(_ onClose: @escaping @Sendable () -> Void, _ body: () async throws -> T) async throws -> T {
        let name = "switchboard.inbound-close.\(ObjectIdentifier(self).hashValue).\(UInt64.random(in: 0...UInt64.max))"
        let channel = self
        try await eventLoop.submit {
            if !channel.isActive { onClose() }
            try channel.pipeline.syncOperations.addHandler(InboundCloseHandler(onClose: onClose), name: name, position: .first)
        }.get()
        do {
            let value = try await body()
            try? await pipeline.removeHandler(name: name).get()
            return value
        } catch {
            try? await pipeline.removeHandler(name: name).get()
            throw error
        }
    }
}
