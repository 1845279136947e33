import HTTPTypes
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
    /// The status the client really got, when a stream's held head was replaced by an error answer.
    public let sent = SentStatus()

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// The status a response really sent, when it is not the one its handler returned: a compatible endpoint's stream
/// holds its `200` head for the first token and may answer `429`, `502` or `504` instead (`EventStream.answerInstead`).
/// The request's metrics and server span read it once the body is written, so they count what the client got.
public final class SentStatus: Sendable {
    private let code = Atomic<Int>(0)

    /// The replaced status, if the head was replaced.
    public var status: HTTPResponse.Status? {
        let code = code.load(ordering: .acquiring)
        return code == 0 ? nil : HTTPResponse.Status(code: code)
    }

    func replaced(with status: Int) {
        code.store(status, ordering: .releasing)
    }
}
