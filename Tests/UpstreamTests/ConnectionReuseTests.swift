import AnthropicMock
import ChatCore
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing
@testable import Upstream

/// A keep-alive HTTP/1.1 server answering every request with one whole Anthropic stream, counting the connections
/// it accepts: what a real upstream does between chats (`MockAnthropic` closes each connection after its stream).
private final class KeepAliveUpstream: Sendable {
    private let channel: any Channel

    private final class Answer: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let counter: KeepAliveUpstream.Counter
        static let body: String = SSE.textAnswer(["Hello", ", ", "world"]).map { piece in
            if case .send(let text) = piece { return text }
            return ""
        }.joined()

        init(_ counter: KeepAliveUpstream.Counter) { self.counter = counter }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            var head = HTTPResponseHead(version: .http1_1, status: .ok)
            head.headers.add(name: "content-type", value: "text/event-stream")
            head.headers.add(name: "transfer-encoding", value: "chunked")
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: Self.body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            counter.answered()
        }
    }

    /// What the connections' handlers report to.
    final class Counter: Sendable {
        let accepted = Atomic<Int>(0)
        let answers = Atomic<Int>(0)
        func answered() { answers.add(1, ordering: .relaxed) }
    }

    let counter = Counter()

    init() async throws {
        let counter = counter
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                counter.accepted.add(1, ordering: .relaxed)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Answer(counter))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var baseURL: String { "http://127.0.0.1:\(channel.localAddress!.port!)" }

    func close() async throws { try await channel.close() }
}

@Suite("Upstream connections", .timeLimit(.minutes(1)))
struct ConnectionReuseTests {
    @Test("chats keep reusing their upstream connections under load: the pool grows to the concurrency, not to the chats")
    func reuse() async throws {
        let upstream = try await KeepAliveUpstream()
        var configuration = AnthropicConfiguration(apiKey: "sk-ant-test", baseURL: upstream.baseURL)
        configuration.maxConnections = 64
        let model = AnthropicClient(configuration: configuration)
        let request = ModelRequest(model: "m", system: nil, maxTokens: 16, messages: [ChatMessage(role: .user, content: .text("hi"))],
                                   tools: [])
        let concurrency = 16
        for _ in 0..<10 {
            try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<concurrency {
                    group.addTask {
                        let turn = try await model.streamTurn(request) { _ in }
                        return turn.content.compactMap { $0["text"]?.stringValue }.joined()
                    }
                }
                for try await text in group { #expect(text == "Hello, world") }
            }
        }
        try await model.shutdown()
        try await upstream.close()
        #expect(upstream.counter.answers.load(ordering: .relaxed) == 10 * concurrency)
        // One connection per concurrent chat on each of the client's event loops at most; closing a connection
        // after each chat would make one per chat (160).
        let accepted = upstream.counter.accepted.load(ordering: .relaxed)
        #expect(accepted <= 2 * concurrency, "accepted \(accepted) connections for \(10 * concurrency) chats")
    }
}
