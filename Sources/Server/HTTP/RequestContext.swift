import Hummingbird
import NIOCore
import Synchronization

/// The request context of every route: Hummingbird's core context plus the connection's channel, which the
/// stream watches to notice a client that went away, and the client's API key.
public struct SwitchboardRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel
    /// The client's key, once `AuthenticationMiddleware` has checked it; `nil` when the server has no keys.
    public var apiKey: APIKey?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
