import ChatCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Where a provider's calls go, read once from its base URL.
struct UpstreamEndpoint: Sendable {
    var tls: Bool
    /// The host to connect to (an IPv6 address without its brackets).
    var host: String
    var port: Int
    /// The `host` header: the host as the URL spells it, with the port when it is not the scheme's.
    var authority: String
    /// The base URL's path without its trailing slash: "" or "/v1", say.
    var basePath: String
    /// `host` is an IPv4 or IPv6 address rather than a name.
    var isIPAddress: Bool { (try? SocketAddress(ipAddress: host, port: 0)) != nil }

    static let invalid = StreamError(code: .upstreamUnreachable, message: "The model service's address is not a valid URL.",
                                     retryable: false)

    init(baseURL: String) throws(StreamError) {
        guard let components = URLComponents(string: baseURL), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let spelled = components.percentEncodedHost, !spelled.isEmpty,
              components.user == nil, components.password == nil
        else { throw Self.invalid }
        tls = scheme == "https"
        let defaultPort = tls ? 443 : 80
        port = components.port ?? defaultPort
        guard (1...65_535).contains(port) else { throw Self.invalid }
        host = spelled.hasPrefix("[") && spelled.hasSuffix("]") ? String(spelled.dropFirst().dropLast()) : spelled
        authority = port == defaultPort ? spelled : "\(spelled):\(port)"
        basePath = components.percentEncodedPath.trimmingSuffix("/")
    }
}

/// One model call's request as it goes on the wire.
struct UpstreamRequest: Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer
}

/// How a model call's transport failed, before `StreamingHTTP.transportError` says it in Switchboard's words.
enum UpstreamTransportError: Error {
    /// No answer's head within the first-byte timeout.
    case firstByteTimeout
    /// The answer went silent for the idle timeout.
    case idleTimeout
    /// The server closed the connection before the answer's end.
    case connectionClosed
    /// Every connection the limit allows to the endpoint is carrying a call.
    case allConnectionsBusy(limit: Int)
}

/// The connections to one endpoint: each event loop keeps its own idle ones (`LoopConnections`), so a call made
/// on a loop (a stream's producer runs on its client connection's) reads the upstream on that same thread, with
/// no hop. A connection is made when a loop has none idle, up to `limit` open across the loops; one that stays
/// idle for `idleTimeout` is closed.
final class UpstreamConnections: Sendable {
    let endpoint: UpstreamEndpoint
    private let limit: Int
    private let connectTimeout: TimeAmount
    private let tls: NIOSSLContext?
    private let open = Atomic<Int>(0)
    private let loops: [ObjectIdentifier: NIOLoopBoundBox<LoopConnections>]
    /// The loops in order, each with its count of idle connections (read from any thread).
    private let order: [(loop: any EventLoop, idle: IdleCount)]
    let group: any EventLoopGroup

    init(endpoint: UpstreamEndpoint, group: any EventLoopGroup, limit: Int, connectTimeout: TimeAmount,
         idleTimeout: TimeAmount, tls: NIOSSLContext?) {
        self.endpoint = endpoint
        self.group = group
        self.limit = limit
        self.connectTimeout = connectTimeout
        self.tls = tls
        var loops: [ObjectIdentifier: NIOLoopBoundBox<LoopConnections>] = [:]
        var order: [(loop: any EventLoop, idle: IdleCount)] = []
        for loop in group.makeIterator() {
            let count = IdleCount()
            loops[ObjectIdentifier(loop)] = NIOLoopBoundBox.makeBoxSendingValue(
                LoopConnections(loop: loop, idleTimeout: idleTimeout, count: count), eventLoop: loop)
            order.append((loop, count))
        }
        self.loops = loops
        self.order = order
    }

    /// The current event loop when it is one of the group's; from elsewhere (a command, a test), the first loop
    /// with an idle connection, else the next loop.
    var preferredLoop: any EventLoop {
        if let loop = MultiThreadedEventLoopGroup.currentEventLoop, loops[ObjectIdentifier(loop)] != nil { return loop }
        return order.first { $0.idle.value.load(ordering: .relaxed) > 0 }?.loop ?? group.next()
    }

    /// A connection on `loop` (which the caller runs on): an idle one, most recently used first, unless `fresh`;
    /// else a new one.
    func connection(on loop: any EventLoop, fresh: Bool, _ done: @escaping (Result<UpstreamConnection, any Error>) -> Void) {
        loop.preconditionInEventLoop()
        let idleList = loops[ObjectIdentifier(loop)]!
        if !fresh, let connection = idleList.value.take() {
            done(.success(connection))
            return
        }
        guard open.add(1, ordering: .relaxed).newValue <= limit || closeIdle(elsewhere: loop) else {
            open.subtract(1, ordering: .relaxed)
            done(.failure(UpstreamTransportError.allConnectionsBusy(limit: limit)))
            return
        }
        let endpoint = endpoint
        let tls = tls
        let connecting = ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls {
                        // An IP address is no host name: NIOSSL refuses it as SNI, and without one it checks the
                        // certificate's IP addresses against the peer's (as AsyncHTTPClient does).
                        try pipeline.addHandler(NIOSSLClientHandler(context: tls, serverHostname: endpoint.isIPAddress ? nil : endpoint.host))
                    }
                    let boundary = ResponseBoundary()
                    try pipeline.addHandler(boundary)
                    try pipeline.addHTTPClientHandlers()
                    let connection = UpstreamConnection(idleList: idleList.value)
                    connection.boundary = boundary
                    boundary.connection = connection
                    try pipeline.addHandler(connection)
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
        connecting.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let channel):
                channel.closeFuture.whenComplete { _ in self.open.subtract(1, ordering: .relaxed) }
                done(Result { try channel.pipeline.syncOperations.handler(type: UpstreamConnection.self) })
            case .failure(let error):
                open.subtract(1, ordering: .relaxed)
                done(.failure(error))
            }
        }
    }

    /// At the limit, a connection idle on another loop makes way for this one: the least recently used there is
    /// closed by its loop a moment later (the count passes the limit by the closes in flight, or by one when that
    /// loop took its last idle connection for a call meanwhile). `false` when no other loop has one idle: every
    /// connection is carrying a call.
    private func closeIdle(elsewhere loop: any EventLoop) -> Bool {
        for (other, idle) in order where other !== loop {
            // Claimed in the count first, so two callers do not both count on the same connection.
            var count = idle.value.load(ordering: .relaxed)
            while count > 0 {
                let (exchanged, found) = idle.value.compareExchange(expected: count, desired: count - 1, ordering: .relaxed)
                if exchanged {
                    let idleList = loops[ObjectIdentifier(other)]!
                    other.execute { idleList.value.closeLeastRecentlyUsed() }
                    return true
                }
                count = found
            }
        }
        return false
    }

    /// Closes the idle connections and keeps none from now on; calls in progress end as they do.
    func shutdown() async {
        for (_, idleList) in loops {
            try? await idleList.eventLoop.submit { idleList.value.closeAll() }.get()
        }
    }
}

/// How many connections a loop keeps idle, for callers on other threads choosing a loop.
final class IdleCount: Sendable {
    let value = Atomic<Int>(0)
}

/// One event loop's idle connections to an endpoint; used on that loop only. The list needs no bound of its own:
/// every connection in it counts towards `UpstreamConnections`' limit on open ones.
final class LoopConnections {
    let loop: any EventLoop
    private let idleTimeout: TimeAmount
    private var idle: [UpstreamConnection] = [] {
        didSet { count.value.store(idle.count, ordering: .relaxed) }
    }
    private let count: IdleCount
    private var closed = false

    init(loop: any EventLoop, idleTimeout: TimeAmount, count: IdleCount) {
        self.loop = loop
        self.idleTimeout = idleTimeout
        self.count = count
    }

    /// The most recently parked open connection, if any.
    func take() -> UpstreamConnection? {
        while let connection = idle.popLast() {
            connection.idleClose?.cancel()
            connection.idleClose = nil
            if connection.isOpen { return connection }
        }
        return nil
    }

    /// Keeps `connection` for the next call, closing it after `idleTimeout` unused.
    func park(_ connection: UpstreamConnection) {
        guard !closed else {
            connection.close()
            return
        }
        idle.append(connection)
        connection.idleClose = loop.assumeIsolated().scheduleTask(in: idleTimeout) { connection.close() }
    }

    /// A connection closed: it is no longer offered.
    func remove(_ connection: UpstreamConnection) {
        idle.removeAll { $0 === connection }
    }

    /// Closes the connection idle the longest, if any.
    func closeLeastRecentlyUsed() {
        guard !idle.isEmpty else { return }
        let connection = idle.removeFirst()
        connection.idleClose?.cancel()
        connection.close()
    }

    func closeAll() {
        closed = true
        let connections = idle
        idle.removeAll()
        for connection in connections {
            connection.idleClose?.cancel()
            connection.close()
        }
    }
}
