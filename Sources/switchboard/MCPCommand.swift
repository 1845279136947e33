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

    @Option(help: "HR database: a SQLite file (default data/switchboard.sqlite), :memory:, or a postgres:// URL.")
    var database = "data/switchboard.sqlite"

    func run() async throws {
        // Standard output carries the protocol: every log line goes to standard error.
        let logger = standardErrorLogger(label: "switchboard.mcp")
        try await withHRDatabase(database, logger: logger) { db in
            var registry = ToolRegistry()
            registry.register(HRTools.all(database: db), source: "built-in")
            try await MCPToolServer.serveStdio(registry.toolBox, version: SwitchboardVersion.current, logger: logger)
        }
    }
}
