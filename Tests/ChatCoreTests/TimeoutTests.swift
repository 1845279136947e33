import ChatCore
import Synchronization
import Testing

/// A wait that ignores cancellation: it ends only when `open()` is called.
private final class Latch: Sendable {
    private let waiter = Mutex<CheckedContinuation<Void, Never>?>(nil)
    private let opened = Mutex(false)

    func wait() async {
        await withCheckedContinuation { continuation in
            let alreadyOpen = opened.withLock { $0 }
            if alreadyOpen { continuation.resume() } else { waiter.withLock { $0 = continuation } }
        }
    }

    func open() {
        opened.withLock { $0 = true }
        waiter.withLock { $0.take() }?.resume()
    }
}

@Suite("withTimeout")
struct TimeoutTests {
    @Test("returns at the deadline even when the operation ignores cancellation")
    func stubbornOperation() async throws {
        let latch = Latch()
        let finished = Mutex(false)
        let result = try await withTimeout(.milliseconds(50)) {
            await latch.wait()
            finished.withLock { $0 = true }
            return 1
        }
        #expect(result == nil)
        // Causality: withTimeout returned while the operation was still waiting.
        #expect(finished.withLock { $0 } == false)
        latch.open()
    }

    @Test("gives the operation's value or error when it ends in time")
    func inTime() async throws {
        #expect(try await withTimeout(.seconds(10)) { 42 } == 42)
        struct Failure: Error {}
        await #expect(throws: Failure.self) { _ = try await withTimeout(.seconds(10)) { () async throws -> Int in throw Failure() } }
    }

    @Test("onTimeout runs before it returns")
    func onTimeoutRuns() async throws {
        let latch = Latch()
        let ran = Mutex(false)
        let result = try await withTimeout(.milliseconds(20), onTimeout: { ran.withLock { $0 = true }; latch.open() }) {
            await latch.wait()
            return 1
        }
        #expect(result == nil)
        #expect(ran.withLock { $0 })
    }

    @Test("cancelling the caller returns at once with CancellationError, whatever the operation does")
    func callerCancelled() async throws {
        let latch = Latch()
        let started = Latch()
        let caller = Task {
            try await withTimeout(.seconds(60)) {
                started.open()
                await latch.wait()
                return 1
            }
        }
        await started.wait()
        caller.cancel()
        await #expect(throws: CancellationError.self) { _ = try await caller.value }
        latch.open()
    }
}
