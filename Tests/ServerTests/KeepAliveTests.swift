import AnthropicMock
import Foundation
import Hummingbird
import HummingbirdTesting
import TestSupport
import Testing
@testable import Server

#if canImport(Glibc)
import Glibc
#endif

/// Sends `count` chats one after another over one TCP connection (as a browser or nginx's upstream keepalive
/// does) and returns each raw response, read to its last chunk. Blocking socket calls run on their own thread.
private func streamsOverOneConnection(port: Int, count: Int) async throws -> [String] {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try blockingStreams(port: port, count: count) })
        }
    }
}

private struct SocketFailure: Error { let step: String }

private func blockingStreams(port: Int, count: Int) throws -> [String] {
    guard let fd = connectedLoopbackSocket(port: port) else { throw SocketFailure(step: "connect") }
    defer { close(fd) }
    var responses: [String] = []
    for index in 0..<count {
        let body = #"{"messages":[{"role":"user","content":"chat \#(index)"}]}"#
        let request = "POST /mcp/chat/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
        guard Array(request.utf8).withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.utf8.count else {
            throw SocketFailure(step: "send \(index)")
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        // A chunked response ends with the zero-length chunk.
        while !received.ends(with: Array("\r\n0\r\n\r\n".utf8)) {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { throw SocketFailure(step: "response \(index): connection closed after \(received.count) bytes") }
            received += buffer[0..<n]
        }
        responses.append(String(decoding: received, as: UTF8.self))
    }
    return responses
}

private extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}

@Suite("Keep-alive", .serialized, .timeLimit(.minutes(1)))
struct KeepAliveTests {
    @Test("a connection carries one stream after another: the server does not close it when a stream ends")
    func streamsShareAConnection() async throws {
        try await MockAnthropic.run { mock in
            for index in 0..<3 { mock.enqueue(.stream(SSE.textAnswer(["answer \(index)"]))) }
            let app = try await buildApplication(configuration: streamingConfiguration(mock))
            try await app.test(.live) { client in
                let responses = try await streamsOverOneConnection(port: try #require(client.port), count: 3)
                #expect(responses.count == 3)
                for (index, response) in responses.enumerated() {
                    #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
                    #expect(response.contains(#""accumulated":"answer \#(index)""#))
                    #expect(response.contains(#""type":"complete""#))
                }
            }
        }
    }
}
