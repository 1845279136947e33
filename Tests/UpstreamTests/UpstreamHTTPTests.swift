import AnthropicMock
import AsyncHTTPClient
import ChatCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import TestSupport
import Testing
@testable import Upstream

/// An HTTP/1.1 server on loopback that records each request (head and body) and answers as `answer` says for
/// the n-th request on the m-th connection (both from 0): a whole Anthropic stream, or a close without a word.
private final class ScriptedUpstream: Sendable {
    enum Answer: Sendable {
        case stream
        /// The stream as a body without length that ends with the connection (HTTP/1.0 style).
        case streamUntilClose
        /// The stream's first text, then `bytes` of comment lines written at once, then its end (`lastWriteDone` is when
        /// the client had taken all of it in).
        case flood(bytes: Int)
        case closeWithoutAnswer
    }

    struct Received: Sendable {
        var head: HTTPRequestHead
        var body: ByteBuffer
        var connection: Int
    }

    private let channel: any Channel
    private let log = Mutex<[Received]>([])
    private let connections = Atomic<Int>(0)
    let closedConnections = Atomic<Int>(0)
    let lastWriteDone = Mutex<ContinuousClock.Instant?>(nil)

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let server: ScriptedUpstream
        let connection: Int
        let answer: @Sendable (_ request: Int, _ connection: Int) -> Answer
        var head: HTTPRequestHead?
        var body = ByteBuffer()
        var requests = 0

        init(server: ScriptedUpstream, connection: Int, answer: @escaping @Sendable (Int, Int) -> Answer) {
            self.server = server
            self.connection = connection
            self.answer = answer
        }

        func channelInactive(context: ChannelHandlerContext) {
            server.closedConnections.add(1, ordering: .relaxed)
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body.clear()
            case .body(var part):
                body.writeBuffer(&part)
            case .end:
                let received = Received(head: head!, body: body, connection: connection)
                server.log.withLock { $0.append(received) }
                defer { requests += 1 }
                switch answer(requests, connection) {
                case .closeWithoutAnswer:
                    context.close(promise: nil)
                case .streamUntilClose:
                    var head = HTTPResponseHead(version: .http1_1, status: .ok)
                    head.headers.add(name: "content-type", value: "text/event-stream")
                    head.headers.add(name: "connection", value: "close")
                    context.write(wrapOutboundOut(.head(head)), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: ScriptedUpstream.streamBody)))), promise: nil)
                    context.close(promise: nil)
                case .flood(let bytes):
                    var head = HTTPResponseHead(version: .http1_1, status: .ok)
                    head.headers.add(name: "content-type", value: "text/event-stream")
                    head.headers.add(name: "transfer-encoding", value: "chunked")
                    context.write(wrapOutboundOut(.head(head)), promise: nil)
                    let text = [SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Hi")].map(ScriptedUpstream.text).joined()
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                    // SSE comment lines, which a reader skips at little cost.
                    let chunk = ByteBuffer(string: ":" + String(repeating: "p", count: (64 << 10) - 2) + "\n")
                    for _ in 0..<(bytes / chunk.readableBytes) {
                        context.write(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil)
                    }
                    let rest = [SSE.stop(0), SSE.messageDelta("end_turn"), SSE.messageStop].map(ScriptedUpstream.text).joined()
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: rest)))), promise: nil)
                    let done = context.eventLoop.makePromise(of: Void.self)
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
                    let server = server
                    done.futureResult.whenSuccess { server.lastWriteDone.withLock { $0 = .now } }
                case .stream:
                    var head = HTTPResponseHead(version: .http1_1, status: .ok)
                    head.headers.add(name: "content-type", value: "text/event-stream")
                    head.headers.add(name: "transfer-encoding", value: "chunked")
                    context.write(wrapOutboundOut(.head(head)), promise: nil)
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: ScriptedUpstream.streamBody)))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                }
            }
        }
    }

    static let streamBody: String = SSE.textAnswer(["Hello", ", ", "world"]).map(text).joined()

    static func text(_ piece: MockAnthropic.Piece) -> String {
        if case .send(let text) = piece { return text }
        return ""
    }

    /// `tls`: the server's certificate and key (PEM files).
    init(tls: (certificate: String, key: String)? = nil, answer: @escaping @Sendable (_ request: Int, _ connection: Int) -> Answer = { _, _ in .stream })
        async throws {
        let context = try tls.map { tls in
            try NIOSSLContext(configuration: .makeServerConfiguration(
                certificateChain: NIOSSLCertificate.fromPEMFile(tls.certificate).map { .certificate($0) },
                privateKey: .privateKey(NIOSSLPrivateKey(file: tls.key, format: .pem))))
        }
        let server = Box()
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // A connection before `init` finished (another test's client reaching a port just reused) is refused.
                    guard let owner = server.value else { throw ChannelError.ioOnClosedChannel }
                    let index = owner.connections.add(1, ordering: .relaxed).oldValue
                    if let context { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(server: owner, connection: index, answer: answer))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        server.value = self
    }

    private final class Box: @unchecked Sendable {
        weak var value: ScriptedUpstream?
    }

    var port: Int { channel.localAddress!.port! }
    var received: [Received] { log.withLock { $0 } }
    var accepted: Int { connections.load(ordering: .relaxed) }

    func close() async throws { try await channel.close() }

    /// A client's settings for this server over plain HTTP, each retry waiting `retryDelay` when given.
    func configuration(retryDelay: Duration? = nil) -> AnthropicConfiguration {
        var configuration = AnthropicConfiguration(apiKey: "sk-ant-test", baseURL: "http://127.0.0.1:\(port)")
        if let retryDelay {
            configuration.retry.baseDelay = retryDelay
            configuration.retry.maxDelay = retryDelay
        }
        return configuration
    }
}

private let request = ModelRequest(model: "claude-haiku-4-5", system: "be brief", maxTokens: 64,
                                   messages: [ChatMessage(role: .user, content: .text("hi"))], tools: [])

private func text(of turn: ModelTurn) -> String {
    turn.content.compactMap { $0["text"]?.stringValue }.joined()
}

@Suite("Upstream HTTP/1.1 client", .serialized, .timeLimit(.minutes(1)))
struct UpstreamHTTPTests {
    @Test("sends the request AsyncHTTPClient sent for the same call: method, target, headers and body")
    func sameRequestAsAsyncHTTPClient() async throws {
        let upstream = try await ScriptedUpstream()
        var configuration = AnthropicConfiguration(apiKey: "sk-ant-test", baseURL: "http://127.0.0.1:\(upstream.port)/base/")
        configuration.version = "2023-06-01"
        try await using(AnthropicClient(configuration: configuration)) { model in
            let turn = try await model.streamTurn(request) { _ in }
            #expect(text(of: turn) == "Hello, world")
        }
        // The same call through AsyncHTTPClient, configured as the client was before it had its own connections.
        let body = try AnthropicClient.requestBody(request, promptCache: true)
        var settings = HTTPClient.Configuration()
        settings.decompression = .disabled
        settings.redirectConfiguration = .disallow
        let reference = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: settings)
        var call = HTTPClientRequest(url: "http://127.0.0.1:\(upstream.port)/base/v1/messages")
        call.method = .POST
        call.headers = ["x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01", "content-type": "application/json",
                        "accept": "text/event-stream"]
        call.body = .bytes(body)
        do {
            let response = try await reference.execute(call, timeout: .seconds(10))
            _ = try await response.body.collect(upTo: 1 << 20)
        } catch {
            try await reference.shutdown()
            throw error
        }
        try await reference.shutdown()

        let received = upstream.received
        try #require(received.count == 2)
        let (ours, theirs) = (received[0], received[1])
        #expect(ours.head.method == .POST && ours.head.uri == "/base/v1/messages" && ours.head.version == .http1_1)
        #expect(ours.head.uri == theirs.head.uri)
        let fields = { (head: HTTPRequestHead) in head.headers.map { "\($0.name.lowercased()): \($0.value)" }.sorted() }
        #expect(fields(ours.head) == fields(theirs.head))
        #expect(fields(ours.head).contains("host: 127.0.0.1:\(upstream.port)"))
        #expect(fields(ours.head).contains("content-length: \(body.readableBytes)"))
        // The same JSON (its keys' order is a dictionary's, not fixed from one rendering to the next).
        let json = { (buffer: ByteBuffer) in try JSONDecoder().decode(JSONValue.self, from: Data(buffer.readableBytesView)) }
        #expect(try json(ours.body) == json(theirs.body))
        #expect(try json(ours.body) == json(body))
        #expect(ours.body.readableBytes == body.readableBytes)
        try await upstream.close()
    }

    @Test("a reused connection the server closes after our request reached it: not sent again at once (it may be billed), but under the retry policy")
    func staleConnectionNotResentAtOnce() async throws {
        // Each connection answers its first request and closes at its second: the server had the request.
        let upstream = try await ScriptedUpstream { request, _ in request == 0 ? .stream : .closeWithoutAnswer }
        var configuration = upstream.configuration(retryDelay: .milliseconds(400))
        configuration.retry.maxAttempts = 1
        try await using(AnthropicClient(configuration: configuration)) { model in
            _ = try await model.streamTurn(request) { _ in }
            // The turn returns at message_stop; the answer's end, read right after on the connection's loop, parks
            // the connection there for this task (not on a loop) to find.
            try await Task.sleep(for: .milliseconds(100))
            let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
            #expect(error?.code == .upstreamStreamEnded)
        }
        #expect(upstream.received.map(\.connection) == [0, 0], "no second copy of a request the server had")
        let retried = try await ScriptedUpstream { request, _ in request == 0 ? .stream : .closeWithoutAnswer }
        try await using(AnthropicClient(configuration: retried.configuration(retryDelay: .milliseconds(400)))) { model in
            _ = try await model.streamTurn(request) { _ in }
            try await Task.sleep(for: .milliseconds(100))
            let started = ContinuousClock.now
            let turn = try await model.streamTurn(request) { _ in }
            #expect(text(of: turn) == "Hello, world")
            #expect(ContinuousClock.now - started >= .milliseconds(300), "sent again as a retry, after its wait")
        }
        #expect(retried.received.map(\.connection) == [0, 0, 1])
        try await upstream.close()
        try await retried.close()
    }

    @Test("an answer without length that ends with its connection is read whole, and the next call takes a new connection")
    func closeDelimited() async throws {
        let upstream = try await ScriptedUpstream { _, _ in .streamUntilClose }
        try await using(AnthropicClient(configuration: upstream.configuration())) { model in
            for _ in 0..<2 {
                let turn = try await model.streamTurn(request) { _ in }
                #expect(text(of: turn) == "Hello, world")
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(upstream.received.map(\.connection) == [0, 1])
        try await upstream.close()
    }

    @Test("reads are held while the consumer catches up: the upstream cannot send past the sockets' buffers until it has")
    func readsHeldForSlowConsumer() async throws {
        // 16 MiB of comments after the first text: more than both sockets' buffers on loopback hold.
        let upstream = try await ScriptedUpstream { _, _ in .flood(bytes: 16 << 20) }
        try await using(AnthropicClient(configuration: upstream.configuration())) { model in
            let firstText = Mutex<ContinuousClock.Instant?>(nil)
            let turn = try await model.streamTurn(request) { event in
                guard case .text = event, firstText.withLock({ $0 }) == nil else { return }
                firstText.withLock { $0 = .now }
                // A consumer that takes a second over its first event.
                try await Task.sleep(for: .seconds(1))
            }
            #expect(text(of: turn) == "Hi")
            let taken = try #require(firstText.withLock { $0 })
            let sent = try #require(upstream.lastWriteDone.withLock { $0 })
            // The upstream's last bytes went out only once the consumer was done with the first event; read on
            // regardless, they would have been taken in within a moment of it.
            #expect(sent - taken > .milliseconds(900), "the upstream finished \(sent - taken) after the first text")
        }
        try await upstream.close()
    }

    @Test("a new connection that closes before answering is not sent to again at once: the retry policy decides")
    func freshConnectionFailureRetried() async throws {
        let upstream = try await ScriptedUpstream { _, connection in connection == 0 ? .closeWithoutAnswer : .stream }
        try await using(AnthropicClient(configuration: upstream.configuration(retryDelay: .milliseconds(300)))) { model in
            let started = ContinuousClock.now
            let turn = try await model.streamTurn(request) { _ in }
            #expect(text(of: turn) == "Hello, world")
            // The retry's backoff (300 ms, jittered down to 225) came before the second attempt.
            #expect(ContinuousClock.now - started >= .milliseconds(220))
        }
        #expect(upstream.received.map(\.connection) == [0, 1])
        try await upstream.close()
    }

    @Test("connections past maxConnections are not made: the call past them fails with a clear error")
    func connectionLimit() async throws {
        try await MockAnthropic.run { mock in
            mock.enqueue(.stream([SSE.messageStart(), SSE.textStart(0), SSE.text(0, "Hi"), .pause(.seconds(5)), SSE.stop(0),
                                  SSE.messageDelta("end_turn"), SSE.messageStop]))
            var configuration = AnthropicConfiguration(apiKey: "sk-ant-test", baseURL: mock.baseURL)
            configuration.maxConnections = 1
            configuration.retry.maxAttempts = 1
            try await using(AnthropicClient(configuration: configuration)) { model in
                let seen = Mutex(false)
                let first = Task { try await model.streamTurn(request) { _ in seen.withLock { $0 = true } } }
                #expect(await eventually { seen.withLock { $0 } })
                let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
                #expect(error?.code == .upstreamUnreachable)
                #expect(error?.message.contains("All 1 connections") == true)
                #expect(mock.received.count == 1)
                first.cancel()
                _ = await first.result
            }
        }
    }

    @Test("a key holding a line break is never sent: the call fails at once, nothing reaches the server")
    func headerInjection() async throws {
        let upstream = try await ScriptedUpstream()
        let configuration = AnthropicConfiguration(apiKey: "sk-ant-test\r\nx-injected: 1", baseURL: "http://127.0.0.1:\(upstream.port)")
        try await using(AnthropicClient(configuration: configuration)) { model in
            let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
            #expect(error?.retryable == false)
            #expect(error?.message.contains("line break") == true)
            #expect(error?.message.contains("sk-ant-test") == false)
        }
        #expect(upstream.received.isEmpty)
        #expect(upstream.accepted == 0)
        try await upstream.close()
    }

    @Test("an HTTPS upstream whose certificate no trusted authority signed is refused before the request is sent")
    func untrustedCertificate() async throws {
        try await withCertificate(names: "DNS:localhost,IP:127.0.0.1") { certificate, key in
            let upstream = try await ScriptedUpstream(tls: (certificate, key))
            var configuration = AnthropicConfiguration(apiKey: "sk-ant-test-SECRET", baseURL: "https://localhost:\(upstream.port)")
            configuration.retry.maxAttempts = 1
            try await using(AnthropicClient(configuration: configuration)) { model in
                let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
                #expect(error?.code == .upstreamUnreachable)
                #expect(error?.message.contains("TLS") == true)
                #expect(error?.message.contains("SECRET") == false)
            }
            #expect(upstream.received.isEmpty)
            try await upstream.close()
        }
    }

    @Test("over HTTPS with the authority trusted (caFile): the call streams, the name is checked, the TLS connection is reused")
    func trustedCertificate() async throws {
        try await withCertificate(names: "DNS:localhost") { certificate, key in
            let upstream = try await ScriptedUpstream(tls: (certificate, key))
            var configuration = AnthropicConfiguration(apiKey: "sk-ant-test", baseURL: "https://localhost:\(upstream.port)")
            configuration.caFile = certificate
            configuration.retry.maxAttempts = 1
            try await using(AnthropicClient(configuration: configuration)) { model in
                for _ in 0..<3 {
                    let turn = try await model.streamTurn(request) { _ in }
                    #expect(text(of: turn) == "Hello, world")
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            #expect(upstream.received.count == 3)
            #expect(upstream.received.first?.head.headers["host"] == ["localhost:\(upstream.port)"])
            #expect(upstream.accepted == 1)

            // The same trusted certificate does not name 127.0.0.1: refused.
            var elsewhere = AnthropicConfiguration(apiKey: "sk-ant-test", baseURL: "https://127.0.0.1:\(upstream.port)")
            elsewhere.caFile = certificate
            elsewhere.retry.maxAttempts = 1
            try await using(AnthropicClient(configuration: elsewhere)) { model in
                let error = await #expect(throws: StreamError.self) { try await model.streamTurn(request) { _ in } }
                // Refused for the name (the IP SAN is checked, no SNI is sent for an address), in our words: no host.
                #expect(error?.message.contains("TLS: the certificate is not for this host") == true, "\(String(describing: error))")
                #expect(error?.message.contains("127.0.0.1") == false && error?.message.contains("localhost") == false)
            }
            #expect(upstream.received.count == 3)
            try await upstream.close()
        }
    }

    @Test("https to an IP address: no SNI (NIOSSL refuses an address as one), the certificate's IP address is checked instead")
    func httpsToAnAddress() async throws {
        try await withCertificate(names: "IP:127.0.0.1") { certificate, key in
            let upstream = try await ScriptedUpstream(tls: (certificate, key))
            var configuration = AnthropicConfiguration(apiKey: "sk-ant-test", baseURL: "https://127.0.0.1:\(upstream.port)")
            configuration.caFile = certificate
            configuration.retry.maxAttempts = 1
            try await using(AnthropicClient(configuration: configuration)) { model in
                let turn = try await model.streamTurn(request) { _ in }
                #expect(text(of: turn) == "Hello, world")
            }
            #expect(upstream.received.count == 1)
            try await upstream.close()
        }
    }
}

/// Runs `body` with a new self-signed certificate (its own authority) for `names` (a subjectAltName list) and its
/// key, as PEM files (openssl, from Debian's package).
private func withCertificate(names: String, _ body: (_ certificate: String, _ key: String) async throws -> Void) async throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-tls-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let certificate = folder.appendingPathComponent("cert.pem").path
    let key = folder.appendingPathComponent("key.pem").path
    let openssl = Process()
    openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    openssl.arguments = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                         "-keyout", key, "-out", certificate, "-days", "1", "-subj", "/CN=switchboard test", "-addext", "subjectAltName=\(names)"]
    openssl.standardError = FileHandle.nullDevice
    openssl.standardOutput = FileHandle.nullDevice
    try openssl.run()
    openssl.waitUntilExit()
    try #require(openssl.terminationStatus == 0)
    try await body(certificate, key)
}

@Suite("Upstream idle connections", .timeLimit(.minutes(3)))
struct UpstreamIdleConnectionTests {
    private let group = MultiThreadedEventLoopGroup.singleton

    private func connections(to upstream: ScriptedUpstream, limit: Int = 8, idleTimeout: TimeAmount = .seconds(60)) throws
        -> UpstreamConnections {
        UpstreamConnections(endpoint: try UpstreamEndpoint(baseURL: "http://127.0.0.1:\(upstream.port)"), group: group, limit: limit,
                            connectTimeout: .seconds(5), idleTimeout: idleTimeout, tls: nil)
    }

    /// A connection taken on `loop`, then parked there at once (it never carried a call).
    private func takeAndPark(_ connections: UpstreamConnections, on loop: any EventLoop) async throws {
        try await loop.submit {
            let parked = loop.makePromise(of: Void.self)
            connections.connection(on: loop, fresh: false) { result in
                switch result {
                case .success(let connection):
                    connection.finished(reusable: true)
                    parked.succeed()
                case .failure(let error):
                    parked.fail(error)
                }
            }
            return parked.futureResult
        }.flatMap { $0 }.get()
    }

    @Test("at the limit, a connection idle on another loop is closed to make way: idle connections never refuse a call")
    func idleElsewhereMakesWay() async throws {
        let upstream = try await ScriptedUpstream()
        let loops = Array(group.makeIterator())
        try #require(loops.count >= 2)
        let connections = try connections(to: upstream, limit: 1)
        try await takeAndPark(connections, on: loops[0])
        #expect(connections.preferredLoop === loops[0])
        // The limit is one and it is idle on the first loop: the second loop's call gets a connection anyway,
        // and the first loop's is closed.
        try await takeAndPark(connections, on: loops[1])
        #expect(await eventually { upstream.closedConnections.load(ordering: .relaxed) == 1 })
        #expect(connections.preferredLoop === loops[1])
        // Counted when the server has set the connection up, which may follow the client's connect by a moment.
        #expect(await eventually { upstream.accepted == 2 })
        await connections.shutdown()
        try await upstream.close()
    }

    @Test("a connection idle past the idle timeout is closed; one in use again before it is kept", .cpuQuiet)
    func idleTimeout() async throws {
        let upstream = try await ScriptedUpstream()
        let loop = group.next()
        let timeout = Duration.seconds(2)
        let connections = try connections(to: upstream, idleTimeout: TimeAmount(timeout))
        let parked = ContinuousClock.now
        try await takeAndPark(connections, on: loop)
        try await Task.sleep(until: parked + .milliseconds(1_500))
        // Taken again before its time: the same connection, its timer started anew.
        let retaken = ContinuousClock.now
        try await takeAndPark(connections, on: loop)
        try #require(ContinuousClock.now - parked < timeout, "retaken too late to tell the timers apart")
        #expect(upstream.accepted == 1)
        // Past the first timer's time, before the second's (checked by the clock, so a slow machine cannot fake it).
        try await Task.sleep(until: parked + timeout + .milliseconds(500))
        let closedBetween = upstream.closedConnections.load(ordering: .relaxed)
        if ContinuousClock.now - retaken < timeout - .milliseconds(100) { #expect(closedBetween == 0) }
        #expect(await eventually(within: .seconds(5)) { upstream.closedConnections.load(ordering: .relaxed) == 1 })
        await connections.shutdown()
        try await upstream.close()
    }
}
