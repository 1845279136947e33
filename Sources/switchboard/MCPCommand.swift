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

    func validate() throws {
        guard toolTimeout > 0, toolTimeout <= 3_600 else { throw ValidationError("--tool-timeout is a number of seconds from 0 to 3600.") }
    }

    func run() async throws {
        // Standard output carries the protocol: every log line goes to standard error.
        let logger = standardErrorLogger(label: "switchboard.mcp")
        try await storage.withBuiltInTools(logger: logger) { tools in
            try await MCPToolServer.serveStdio(tools, version: SwitchboardVersion.current,
                                               toolTimeout: .nanoseconds(Int64(toolTimeout * 1e9)), logger: logger)
        }
    }
}
