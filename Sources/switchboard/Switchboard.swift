import ArgumentParser
import ChatCore
import Foundation
import NIOCore
import NIOPosix

struct Switchboard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "A streaming chat server between chat frontends and an LLM with tools.",
        version: SwitchboardVersion.current,
        subcommands: [Serve.self, Stream.self, Analyze.self, Rules.self, Keys.self, ToolsCommand.self, MCPCommand.self, Bench.self]
    )
}

/// The process's entry: `serve` first hands Swift's global executor to NIO's event loops, so a stream's tasks run
/// on the threads its sockets are served on (no wake-up of another thread per relayed token); then the command.
@main
enum Entry {
    static func main() {
        if CommandLine.arguments.dropFirst().first == "serve" {
            NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        Task {
            await Switchboard.main()
            exit(0)
        }
        dispatchMain()
    }
}
