import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
public func acceptsConnections(port: Int) -> Bool {
    guard let fd = connectedLoopbackSocket(port: port) else { return false }
    close(fd)
    return true
}

/// Opens a stream on a raw connection and never reads from it; the connection stays open until `release()`.
public final class NonReadingClient: @unchecked Sendable {
    public let fd: Int32

    public init(port: Int, body: String) throws {
        // A small receive buffer, so the server's writes back up soon.
        guard let fd = connectedLoopbackSocket(port: port, receiveBuffer: 4096) else { throw CocoaError(.fileReadUnknown) }
        self.fd = fd
        let request = "POST /mcp/chat/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
        _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    }

    public func release() { close(fd) }
}

/// A blocking TCP socket connected to 127.0.0.1:`port`, with `receiveTimeout` on reads (and `receiveBuffer`
/// bytes of receive buffer when given); `nil` when the connection is refused. The caller closes it.
public func connectedLoopbackSocket(port: Int, receiveTimeout: Int = 10, receiveBuffer: Int32? = nil) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var timeout = timeval(tv_sec: receiveTimeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
    var address = loopback(port: port)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else {
        close(fd)
        return nil
    }
    return fd
}

func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return address
}

/// Sends `GET target` exactly as written (no client normalises it: `//metrics`, `/./metrics`, `/x/../metrics`),
/// with `headers`, on a new connection, and gives the response's status code; `nil` when no status line came.
/// The blocking socket runs on a thread of its own, never on the tasks' pool the server in this process needs.
public func rawGetStatus(port: Int, target: String, headers: [(String, String)] = []) async -> Int? {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(returning: blockingGetStatus(port: port, target: target, headers: headers))
        }
    }
}

private func blockingGetStatus(port: Int, target: String, headers: [(String, String)]) -> Int? {
    guard let fd = connectedLoopbackSocket(port: port) else { return nil }
    defer { close(fd) }
    // A Host of the caller's replaces the default one: a request has exactly one (`nil` for `Host` sends none).
    let host = headers.contains { $0.0.lowercased() == "host" } ? "" : "Host: 127.0.0.1\r\n"
    let request = "GET \(target) HTTP/1.1\r\n\(host)Connection: close\r\n"
        + headers.filter { !$0.1.isEmpty }.map { "\($0.0): \($0.1)\r\n" }.joined() + "\r\n"
    _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1024)
    while !received.contains(UInt8(ascii: "\n")) {
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { break }
        received += buffer[0..<n]
    }
    let line = String(decoding: received, as: UTF8.self).split(separator: "\r\n").first ?? ""
    let parts = line.split(separator: " ")
    return parts.count >= 2 ? Int(parts[1]) : nil
}

/// Sends `request` (the bytes exactly) on a new connection and gives what the first `recv(2)` returned and when:
/// the bytes of the server's first write (a loopback write of a few hundred bytes arrives whole), so a test can
/// tell what the server sent together. The connection stays open `keepOpen` after that (a hang-up would stop the
/// server's work for it). The blocking socket runs on a thread of its own.
public func rawFirstReceive(port: Int, request: String, keepOpen: Duration = .zero) async
    -> (bytes: [UInt8], at: ContinuousClock.Instant)? {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            guard let fd = connectedLoopbackSocket(port: port) else { return continuation.resume(returning: nil) }
            defer { close(fd) }
            _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = recv(fd, &buffer, buffer.count, 0)
            let at = ContinuousClock.now
            continuation.resume(returning: n > 0 ? (Array(buffer[0..<n]), at) : nil)
            if keepOpen > .zero { Thread.sleep(forTimeInterval: Double(keepOpen.components.seconds) + Double(keepOpen.components.attoseconds) / 1e18) }
        }
    }
}
