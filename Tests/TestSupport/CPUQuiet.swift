import ChatCore
import Testing

/// Tests that assert an upper bound on time (a hang-up stops the upstream within 100 ms) and tests that burn
/// CPU (starting Python, fuzzing) take turns: Swift Testing runs suites in parallel, and on a 2-core CI
/// machine a Python start-up next to a timing test makes the timing test measure the machine, not the code.
/// The wait for a turn counts toward a test's `.timeLimit`, so suites with this trait allow 3 minutes.
public struct CPUQuiet: TestTrait, SuiteTrait, TestScoping {
    private static let lock = AsyncMutex()

    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void)
        async throws
    {
        // Applied recursively, a suite's trait reaches every test; the lock is taken around each test case.
        guard testCase != nil else { return try await function() }
        try await Self.lock.withLock { try await function() }
    }
}

extension Trait where Self == CPUQuiet {
    /// Runs each test of the suite alone among the `.cpuQuiet` ones (see `CPUQuiet`).
    public static var cpuQuiet: CPUQuiet { CPUQuiet() }
}
