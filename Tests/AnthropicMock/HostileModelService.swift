import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A model service on loopback that answers with exactly the bytes a test scripts: a status line, headers and a
/// body framed any way (or not at all), dripped, cut, followed by junk, or never ended. It reads each request
/// (head and `content-length` body) the way HTTP/1.1 frames it, keeps connections open between requests, and
/// answers each with the next scripted reply (`clean` when none is queued), so a test can tell whether a
/// client's next call read its own answer or the rest of the last one.
public final class HostileModelService: Sendable {
    /// One reply.
    public struct Reply: Sendable {
        /// What is written, in order: bytes, or a pause.
        public enum Piece: Sendable {
            case bytes([UInt8])
            case pause(Duration)
        }

        public var pieces: [Piece]
        /// What happens once the pieces are written.
        public var then: Ending

        public enum Ending: Sendable {
            /// The connection stays open for the next request.
            case keepOpen
            case close
            /// Nothing more is written, the connection stays open: a body that never ends.
            case hang
        }

        public init(_ pieces: [Piece], then: Ending = .keepOpen) {
            self.pieces = pieces
            self.then = then
        }

        /// `status` with `headers` and `body` sent as one chunked body (or with a length, or until the close).
        public static func http(status: Int = 200, headers: [(String, String)] = [("content-type", "text/event-stream")],
                                body: [UInt8], framing: Framing = .chunked, then: Ending = .keepOpen) -> Reply {
            var head = "HTTP/1.1 \(status) \(status == 200 ? "OK" : "Status")\r\n"
            for (name, value) in headers { head += "\(name): \(value)\r\n" }
            var pieces: [Piece] = []
            switch framing {
            case .chunked:
                head += "transfer-encoding: chunked\r\n\r\n"
                var bytes = Array(head.utf8)
                if !body.isEmpty { bytes += Array((String(body.count, radix: 16) + "\r\n").utf8) + body + Array("\r\n".utf8) }
                bytes += Array("0\r\n\r\n".utf8)
                pieces = [.bytes(bytes)]
            case .length:
                head += "content-length: \(body.count)\r\n\r\n"
                pieces = [.bytes(Array(head.utf8) + body)]
            case .untilClose:
                head += "connection: close\r\n\r\n"
                return Reply([.bytes(Array(head.utf8) + body)], then: .close)
            }
            return Reply(pieces, then: then)
        }

        public enum Framing: Sendable {
            case chunked, length, untilClose
        }
    }

    private struct State {
        var queue: [Reply] = []
        var requests = 0
        var connections = 0
        /// The connection each request arrived on, in order.
        var requestConnections: [Int] = []
    }

    private let channel: any Channel
    private let state = Mutex(State())
    private let clean: Reply

    public var port: Int { channel.localAddress?.port ?? 0 }
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    /// Requests read whole, in all.
    public var requests: Int { state.withLock { $0.requests } }
    public var requestConnections: [Int] { state.withLock { $0.requestConnections } }

    /// A service that answers `clean` whenever nothing is queued.
    public static func start(clean: Reply) async throws -> HostileModelService {
        let box = Mutex<HostileModelService?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let service = box.withLock({ $0 }) else { throw ChannelError.ioOnClosedChannel }
                    try channel.pipeline.syncOperations.addHandler(Connection(service: service, number: service.connected()))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let service = HostileModelService(channel: channel, clean: clean)
        box.withLock { $0 = service }
        return service
    }

    private init(channel: any Channel, clean: Reply) {
        self.channel = channel
        self.clean = clean
    }

    /// The next requests' replies, in order.
    public func enqueue(_ replies: Reply...) {
        state.withLock { $0.queue.append(contentsOf: replies) }
    }

    /// Drops what is queued.
    public func reset() {
        state.withLock { $0.queue.removeAll() }
    }

    public func stop() async throws {
        try await channel.close()
    }

    private func connected() -> Int {
        state.withLock { state in
            defer { state.connections += 1 }
            return state.connections
        }
    }

    fileprivate func reply(on connection: Int) -> Reply {
        state.withLock { state in
            state.requests += 1
            state.requestConnections.append(connection)
            return state.queue.isEmpty ? clean : state.queue.removeFirst()
        }
    }

    /// One connection: reads requests, writes each its reply.
    private final class Connection: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let service: HostileModelService
        let number: Int
        var received = ByteBuffer()
        /// A reply is being written (a request that arrives meanwhile waits in `received`).
        var answering = false
        var open = true

        init(service: HostileModelService, number: Int) {
            self.service = service
            self.number = number
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            received.writeBuffer(&buffer)
            answerNext(context: context)
        }

        func channelInactive(context: ChannelHandlerContext) {
            open = false
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        /// Takes one whole request off `received`, if there is one, and answers it.
        private func answerNext(context: ChannelHandlerContext) {
            guard !answering, takeRequest() else { return }
            answering = true
            write(service.reply(on: number), context: context)
        }

        private func takeRequest() -> Bool {
            let view = received.readableBytesView
            guard let end = view.firstRange(of: Array("\r\n\r\n".utf8)) else { return false }
            let headLength = end.upperBound - view.startIndex
            let head = String(decoding: view.prefix(headLength), as: UTF8.self).lowercased()
            var length = 0
            for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            guard view.count >= headLength + length else { return false }
            received.moveReaderIndex(forwardBy: headLength + length)
            received.discardReadBytes()
            return true
        }

        private func write(_ reply: Reply, context: ChannelHandlerContext) {
            var pieces = reply.pieces[...]
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            func next() {
                let (connection, context) = bound.value
                guard connection.open else { return }
                guard let piece = pieces.popFirst() else {
                    switch reply.then {
                    case .keepOpen:
                        connection.answering = false
                        connection.answerNext(context: context)
                    case .close:
                        context.close(promise: nil)
                    case .hang:
                        break
                    }
                    return
                }
                switch piece {
                case .bytes(let bytes):
                    context.writeAndFlush(NIOAny(ByteBuffer(bytes: bytes))).assumeIsolated().whenComplete { _ in next() }
                case .pause(let duration):
                    loop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(duration.components.seconds) * 1_000_000_000
                                                                       + duration.components.attoseconds / 1_000_000_000)) { next() }
                }
            }
            next()
        }
    }
}
