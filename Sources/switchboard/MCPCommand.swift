import ArgumentParser
import ChatCore
import Foundation
import Logging
import Tools

struct MCPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Serve the built-in tools over MCP on standard input/output (for Claude Desktop and other MCP clients).",
        discussion: "See Docs/TOOLS.md for the desktop client's configuration."
    )

    @OptionGroup var storage: DatabaseOption

    @Option(help: "Seconds a tool call may run before it is cancelled and answered as an error.")
    var toolTimeout: Double = 30

    @Option(help: "The longest message (one line of JSON-RPC) read, in bytes; a longer one is skipped and answered with an error.")
    var maxMessageBytes: Int = MCPToolServer.defaultMaxMessageBytes

    func validate() throws {
        guard toolTimeout > 0, toolTimeout <= 3_600 else { throw ValidationError("--tool-timeout is a number of seconds from 0 to 3600.") }
        guard (1_024...(64 << 20)).contains(maxMessageBytes) else {
            throw ValidationError("--max-message-bytes is a number of bytes from 1024 to 67108864.")
        }
    }

    func run() async throws {
        // Standard output carries the protocol: every log line goes to standard error.
        let logger = standardErrorLogger(label: "switchboard.mcp")
        try await storage.withBuiltInTools(logger: logger) { tools in
            try await MCPToolServer.serveStdio(tools, version: SwitchboardVersion.current,
                                               toolTimeout: .nanoseconds(Int64(toolTimeout * 1e9)),
                                               maxMessageBytes: maxMessageBytes, logger: logger)
        }
    }
}
