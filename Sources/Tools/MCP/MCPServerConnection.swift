import ChatCore
import Foundation
import Logging
import MCP
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// One MCP server: connected at start, its tools offered under their own names, reconnected when it dies.
/// While it is down, its tools fail at once with a message saying so (the model can read it and go on).
public final class MCPServerConnection: Service, Sendable {
    public let name: String
    let spec: MCPConfiguration.ServerSpec
    let logger: Logger
    let reconnectDelay: Duration
    let connectTimeout: Duration
    /// Where a stdio server's standard error goes, a line at a time, prefixed with the server's name.
    let errorOutput: @Sendable (String) -> Void
    /// The environment a stdio server's allowed variables are taken from (this process's, unless a test gives one).
    let inheritedEnvironment: [String: String]

    /// The longest pause between reconnection attempts.
    static let maxReconnectDelay: Duration = .seconds(30)
    /// How long a stopped stdio server has between SIGTERM and SIGKILL.
    static let terminationGrace: Duration = .seconds(2)
    /// How often `run()` looks at the connection: a lost one is torn down (its calls in flight fail) and
    /// reconnected within this.
    static let watchInterval: Duration = .milliseconds(50)
    /// The longest wait `Task.sleep` is asked for when it is only there to be cancelled.
    private static let untilCancelled: Duration = .seconds(365 * 86_400)

    private struct Live {
        var client: Client?
        var process: Process?
        var pipes: [Pipe] = []
        var generation = 0
        /// Connections lost and not yet torn down (`run()` and `disconnect()` do it).
        var lost: [Lost] = []
    }

    /// A lost connection's parts, to disconnect (which fails the calls in flight) and stop.
    private struct Lost {
        let client: Client
        let process: Process?
        let pipes: [Pipe]
    }

    private let live = Mutex<Live>(Live())
    private let definitions = Mutex<[ToolDefinition]>([])

    public init(name: String, spec: MCPConfiguration.ServerSpec, logger: Logger,
                reconnectDelay: Duration = .seconds(1), connectTimeout: Duration = .seconds(15),
                errorOutput: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) },
                inheritedEnvironment: [String: String] = ProcessInfo.processInfo.environment) {
        self.name = name
        self.inheritedEnvironment = inheritedEnvironment
        self.spec = spec
        self.errorOutput = errorOutput
        var logger = logger
        logger[metadataKey: "mcp_server"] = "\(name)"
        self.logger = logger
        self.reconnectDelay = reconnectDelay
        self.connectTimeout = connectTimeout
    }

    /// The stdio server's process id while it runs.
    var processIdentifier: Int32? { live.withLock { $0.process.map(\.processIdentifier) } }

    /// The pause after the `attempts`-th failed reconnection: doubling from `reconnectDelay`, at most 30 s.
    func delay(afterAttempts attempts: Int) -> Duration {
        min(reconnectDelay * (1 << min(max(attempts - 1, 0), 16)), max(reconnectDelay, Self.maxReconnectDelay))
    }

    /// Whether the server is connected now.
    public var isConnected: Bool { live.withLock { $0.client != nil } }

    /// How many times a connection was made (1 after `start`, more after reconnections).
    public var connections: Int { live.withLock { $0.generation } }

    /// The tools the server listed when it last connected.
    public var toolDefinitions: [ToolDefinition] { definitions.withLock { $0 } }

    /// Connects and lists the tools; call once before registering them.
    public func start() async throws -> [any ChatCore.Tool] {
        try await connect()
        return toolDefinitions.map { MCPRemoteTool(definition: $0, connection: self) }
    }

    /// Watches the connection and reconnects (with a pause between attempts) when it is lost.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var attempts = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.watchInterval)
                await self.tearDownLost()
                guard !self.isConnected, !Task.isCancelled else { continue }
                do {
                    try await self.connect()
                    attempts = 0
                    self.logger.notice("MCP server reconnected")
                } catch {
                    attempts += 1
                    // Log the first failures, then one in ten, so a server down for long does not flood the log.
                    if attempts <= 3 || attempts % 10 == 0 {
                        self.logger.error("MCP server still down", metadata: ["error": "\(error)", "attempts": "\(attempts)"])
                    }
                    try? await Task.sleep(for: self.delay(afterAttempts: attempts))
                }
            }
        }
        await disconnect()
    }

    func call(_ tool: String, _ input: JSONValue) async throws -> ToolOutput {
        guard let client = live.withLock({ $0.client }) else {
            throw ToolError("The MCP server \"\(name)\" that provides \(tool) is not connected right now; it is being restarted. Try again shortly.")
        }
        let arguments: [String: MCP.Value]
        if case .object(let fields) = input { arguments = fields.mapValues(\.mcpValue) } else { arguments = [:] }
        do {
            let request: RequestContext<CallTool.Result> = try await client.callTool(name: tool, arguments: arguments)
            // A tool cancelled here (client gone, tool timeout) is cancelled on the server too. The SDK's wait does
            // not heed cancellation; cancelling the request on the client ends it.
            let answered = Answered()
            let result = try await withThrowingTaskGroup(of: CallTool.Result?.self) { group in
                group.addTask {
                    defer { answered.flag.store(true, ordering: .releasing) }
                    return try await request.value
                }
                group.addTask {
                    try? await Task.sleep(for: Self.untilCancelled)
                    if !answered.flag.load(ordering: .acquiring) {
                        try? await client.cancelRequest(request.requestID, reason: "cancelled by the client")
                    }
                    return nil
                }
                defer { group.cancelAll() }
                while let next = try await group.next() {
                    if let next { return next }
                }
                throw CancellationError()
            }
            return ToolOutput(mcpContent: result.content, isError: result.isError)
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as MCPError where !error.isTransportFailure {
            // The server answered with a JSON-RPC error: it is alive, the call failed.
            throw ToolError("\(tool) on the MCP server \"\(name)\" failed: \(error.localizedDescription)")
        } catch {
            lose(client, reason: "\(error)")
            throw ToolError("The MCP server \"\(name)\" was lost while running \(tool); it is being restarted.")
        }
    }

    private func connect() async throws {
        let client = Client(name: "switchboard", version: SwitchboardVersion.current)
        var process: Process?
        var pipes: [Pipe] = []
        let transport: any Transport
        if let command = spec.command {
            let launched = try launch(command)
            process = launched.process
            pipes = launched.pipes
            transport = launched.transport
        } else if let url = spec.url {
            transport = StreamableHTTPTransport(endpoint: url, headers: spec.headers ?? [:], logger: logger)
        } else {
            throw ToolError("MCP server \"\(name)\" has no command or URL")
        }
        do {
            // The SDK's requests do not heed cancellation: disconnecting fails them when time is up.
            let listed = try await withTimeout(connectTimeout, onTimeout: { await client.disconnect() }) {
                _ = try await client.connect(transport: transport)
                var tools: [ToolDefinition] = []
                var cursor: String?
                repeat {
                    let page = try await client.listTools(cursor: cursor)
                    tools += page.tools.map {
                        ToolDefinition(name: $0.name, description: $0.description ?? "", inputSchema: JSONValue($0.inputSchema))
                    }
                    cursor = page.nextCursor
                } while cursor != nil
                return tools
            }
            guard let listed else { throw ToolError("no answer within \(connectTimeout)") }
            definitions.withLock { $0 = listed }
        } catch {
            await client.disconnect()
            process?.terminate()
            withExtendedLifetime(pipes) {}
            throw error
        }
        let generation = live.withLock { state -> Int in
            state.client = client
            state.process = process
            state.pipes = pipes
            state.generation += 1
            return state.generation
        }
        process?.terminationHandler = { [weak self, weak client] ended in
            guard let self, let client else { return }
            self.lose(client, reason: "exited with status \(ended.terminationStatus)")
        }
        if let process, !process.isRunning { lose(client, reason: "exited at start") }
        logger.info("MCP server connected", metadata: ["tools": "\(toolDefinitions.count)", "connection": "\(generation)"])
    }

    /// Marks this client's connection lost (once) and tears it down: pending calls fail, the process ends.
    private func lose(_ client: Client, reason: String) {
        let taken = live.withLock { state -> (Process?, [Pipe])? in
            guard state.client === client else { return nil }
            defer { state.client = nil; state.process = nil; state.pipes = [] }
            return (state.process, state.pipes)
        }
        guard let (process, pipes) = taken else { return }
        logger.error("MCP server lost; reconnecting", metadata: ["reason": "\(reason)"])
        // Torn down by `run()` within its watch interval: disconnecting fails the calls in flight.
        live.withLock { $0.lost.append(Lost(client: client, process: process, pipes: pipes)) }
    }

    /// Disconnects and stops the connections lost since the last look.
    private func tearDownLost() async {
        let lost = live.withLock { state in
            defer { state.lost = [] }
            return state.lost
        }
        for connection in lost {
            await connection.client.disconnect()
            if let process = connection.process { await Self.stop(process) }
            // The transport has stopped reading; the pipes' descriptors may close now.
            withExtendedLifetime(connection.pipes) {}
        }
    }

    /// Ends the connection and its process; `run()` does this when the service stops.
    func disconnect() async {
        let (client, process, pipes) = live.withLock { state in
            defer { state.client = nil; state.process = nil; state.pipes = [] }
            return (state.client, state.process, state.pipes)
        }
        await client?.disconnect()
        if let process { await Self.stop(process) }
        withExtendedLifetime(pipes) {}
        await tearDownLost()
    }

    /// SIGTERM, then SIGKILL if the process is still there after `terminationGrace`.
    static func stop(_ process: Process) async {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = ContinuousClock.now + terminationGrace
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// What a stdio server inherits: `PATH`, `HOME` and `LANG` only, and its configured `env`; never the model's
    /// API key, a database URL or a `SWITCHBOARD_*` setting of ours.
    static func childEnvironment(_ ours: [String: String], configured: [String: String]?) -> [String: String] {
        ours.filter { ["PATH", "HOME", "LANG"].contains($0.key) }.merging(configured ?? [:]) { $1 }
    }

    /// Writing to a server that died must be an error (EPIPE), not a signal that ends this process.
    private static let ignoreBrokenPipes: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    private func launch(_ command: String) throws -> (process: Process, transport: StdioTransport, pipes: [Pipe]) {
        Self.ignoreBrokenPipes
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [command] + (spec.args ?? [])
        process.environment = Self.childEnvironment(inheritedEnvironment, configured: spec.env)
        let toServer = Pipe()
        let fromServer = Pipe()
        let errors = Pipe()
        process.standardInput = toServer
        process.standardOutput = fromServer
        process.standardError = errors
        let lines = LineSplitter(prefix: "[mcp \(name)] ", output: errorOutput)
        errors.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                lines.finish()
            } else {
                lines.feed(data)
            }
        }
        do {
            try process.run()
        } catch {
            throw ToolError("cannot start \(command): \(error.localizedDescription)")
        }
        let transport = StdioTransport(input: FileDescriptor(rawValue: fromServer.fileHandleForReading.fileDescriptor),
                                       output: FileDescriptor(rawValue: toServer.fileHandleForWriting.fileDescriptor),
                                       logger: logger)
        return (process, transport, [toServer, fromServer, errors])
    }
}

extension MCPError {
    /// Whether the error means the connection to the server is gone (rather than an error the server answered).
    var isTransportFailure: Bool {
        switch self {
        case .connectionClosed, .transportError: true
        case .internalError(let detail): detail == "Client disconnected" || detail == "Client connection not initialized"
        default: false
        }
    }
}

/// Splits bytes into lines and hands each on with a prefix; a partial line waits for the rest (at most 64 KiB).
private final class LineSplitter: Sendable {
    private let prefix: String
    private let output: @Sendable (String) -> Void
    private let pending = Mutex<[UInt8]>([])

    init(prefix: String, output: @escaping @Sendable (String) -> Void) {
        self.prefix = prefix
        self.output = output
    }

    func feed(_ data: Data) {
        let complete = pending.withLock { buffer -> [String] in
            buffer.append(contentsOf: data)
            var lines: [String] = []
            while let newline = buffer.firstIndex(of: 0x0A) {
                lines.append(String(decoding: buffer[..<newline], as: UTF8.self))
                buffer.removeSubrange(...newline)
            }
            if buffer.count > 64 << 10 {
                lines.append(String(decoding: buffer, as: UTF8.self))
                buffer.removeAll()
            }
            return lines
        }
        for line in complete { output(prefix + line) }
    }

    func finish() {
        let rest = pending.withLock { buffer in
            defer { buffer.removeAll() }
            return buffer
        }
        if !rest.isEmpty { output(prefix + String(decoding: rest, as: UTF8.self)) }
    }
}

/// Whether an MCP call was answered (or failed), so cancelling it after that sends nothing.
private final class Answered: Sendable {
    let flag = Atomic(false)
}
