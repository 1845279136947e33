import ArgumentParser
import ChatCore

@main
struct Switchboard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "A streaming chat server between chat frontends and an LLM with tools.",
        version: SwitchboardVersion.current,
        subcommands: [Serve.self, Stream.self, Analyze.self, Rules.self, Keys.self, ToolsCommand.self, MCPCommand.self, Bench.self]
    )
}
