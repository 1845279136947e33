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
    @Test("at the deadline the operation is cancelled, and withTimeout returns once it has ended: nothing outlives it")
    func cancelledAtTheDeadline() async throws {
        let ended = Mutex<String?>(nil)
        let result = try await withTimeout(.milliseconds(50)) { () async throws -> Int in
            do {
                try await Task.sleep(for: .seconds(60))
                ended.withLock { $0 = "slept" }
            } catch {
                ended.withLock { $0 = "cancelled" }
                throw error
            }
            return 1
        }
        #expect(result == nil)
        // Causality: the operation had ended, cancelled, before withTimeout returned.
        #expect(ended.withLock { $0 } == "cancelled")
    }

    @Test("gives the operation's value or error when it ends in time")
    func inTime() async throws {
        #expect(try await withTimeout(.seconds(10)) { 42 } == 42)
        struct Failure: Error {}
        await #expect(throws: Failure.self) { _ = try await withTimeout(.seconds(10)) { () async throws -> Int in throw Failure() } }
    }

    @Test("onTimeout unblocks an operation that ignores cancellation, which ends before withTimeout returns")
    func onTimeoutUnblocks() async throws {
        let latch = Latch()
        let finished = Mutex(false)
        let result = try await withTimeout(.milliseconds(20), onTimeout: { latch.open() }) {
            await latch.wait()
            finished.withLock { $0 = true }
            return 1
        }
        #expect(result == nil)
        #expect(finished.withLock { $0 })
    }

    @Test("cancelling the caller cancels the operation and throws CancellationError")
    func callerCancelled() async throws {
        let started = Latch()
        let sawCancel = Mutex(false)
        let caller = Task {
            try await withTimeout(.seconds(60)) { () async throws -> Int in
                started.open()
                do {
                    try await Task.sleep(for: .seconds(60))
                } catch {
                    sawCancel.withLock { $0 = true }
                    throw error
                }
                return 1
            }
        }
        await started.wait()
        caller.cancel()
        await #expect(throws: CancellationError.self) { _ = try await caller.value }
        #expect(sawCancel.withLock { $0 })
    }
}
