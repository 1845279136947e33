import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Python's fastmcp, the independent MCP implementation the MCP tests run against (`.ci/run` installs it).
public enum FastMCP {
    /// Whether `python3` can import fastmcp here.
    public static let available = pythonCanImport("fastmcp")

    /// The fastmcp server script: stdio by default, `http PORT` or `http-json PORT` for Streamable HTTP.
    public static let serverScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/mcp_server.py").path

    /// The fastmcp client script that drives `switchboard mcp` and prints what it saw as JSON.
    public static let clientScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/mcp_client.py").path
}

/// The Python MCP server on Streamable HTTP, for one test.
public final class PythonHTTPServer: Sendable {
    public let port: Int
    public let mode: String
    public let process: Process

    public init(mode: String, port: Int = freeLoopbackPort()) throws {
        self.port = port
        self.mode = mode
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", FastMCP.serverScript, mode, String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
    }

    public var url: String { "http://127.0.0.1:\(port)/mcp" }

    /// Waits until the server accepts connections.
    public func ready() async -> Bool {
        await eventually { acceptsConnections(port: port) }
    }

    /// Kills the server (as a crash would: no graceful shutdown waiting on open connections).
    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// The official OpenAI and Anthropic Python SDKs (and LangChain's `ChatOpenAI`, LiteLLM's SDK), the clients the compatible
/// endpoints are tested with (`.ci/run` installs them from PyPI), and the script that drives them.
public enum SDKClients {
    public static let available = pythonCanImport("openai") && pythonCanImport("anthropic")
    public static let langChain = pythonCanImport("langchain_openai")
    public static let liteLLM = pythonCanImport("litellm")
    public static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/sdk_client.py").path
}

/// A finished child process's exit status and output.
public struct ProcessResult: Sendable {
    public let status: Int32
    public let stdout: Data
    public let stderr: Data

    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Runs a program to the end, collecting its output; one still running after `deadline` is killed (a test fails
/// on its output instead of hanging the run).
public func runProcess(_ executable: URL, _ arguments: [String], in directory: URL? = nil,
                       deadline: Duration = .seconds(120)) throws -> ProcessResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let watchdog = DispatchWorkItem { [process] in
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
    DispatchQueue.global().asyncAfter(deadline: .now() + deadline.timeInterval, execute: watchdog)
    defer { watchdog.cancel() }
    // Standard error is read on the side, so neither pipe can fill up and stall the child.
    let errors = ErrorCollector(err.fileHandleForReading)
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: stdout, stderr: errors.wait())
}

extension Process {
    /// Waits for the process to end, at most `grace`; then kills it and waits for that. Whether it ended by itself.
    @discardableResult
    public func waitForExit(within grace: Duration = .seconds(15)) -> Bool {
        let deadline = ContinuousClock.now + grace
        while isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.01) }
        guard isRunning else { return true }
        kill(processIdentifier, SIGKILL)
        waitUntilExit()
        return false
    }
}

extension Duration {
    /// The duration in seconds, as Foundation and Dispatch take it.
    public var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}

private final class ErrorCollector: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}

/// A TCP port nobody listens on now.
public func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = loopback(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// `runProcess` on a thread of its own, so a test that serves requests in this process keeps every thread of
/// Swift's pool while it waits.
public func runProcessAsync(_ executable: URL, _ arguments: [String], in directory: URL? = nil) async throws -> ProcessResult {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try runProcess(executable, arguments, in: directory) })
        }
    }
}

/// Headless Chromium driven by Python's Selenium, for the tests of the pages the server serves (`.ci/run` installs
/// Debian's chromium and chromium-driver, and selenium from PyPI).
public enum Browser {
    public static let available = FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver") && pythonCanImport("selenium")
    /// Debian's React 18 (node-react, node-react-dom), for running the React examples of the docs in the browser.
    public static let react = FileManager.default.fileExists(atPath: "/usr/share/nodejs/react/umd/react.development.js")
        && FileManager.default.fileExists(atPath: "/usr/share/nodejs/react-dom/umd/react-dom.development.js")
}

/// Whether the `python3` on the path can import `module`.
func pythonCanImport(_ module: String) -> Bool {
    commandSucceeds(["python3", "-c", "import \(module)"])
}

/// Whether the command (looked up on the path) runs and exits 0.
public func commandSucceeds(_ arguments: [String]) -> Bool {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}

/// The test PostgreSQL's database for the shared-quota and cluster tests (`scripts/test-postgres.sh` makes it): a
/// database of their own, since other suites reset the HR tables of theirs. `nil` without a test PostgreSQL.
public let clusterPostgresURL = ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_POSTGRES_URL"]?
    .replacingOccurrences(of: "/switchboard_test?", with: "/switchboard_test_cluster?")
