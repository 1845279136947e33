import ArgumentParser
import ChatCore
import Foundation
import Logging
import Tools

struct ToolsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tools",
        abstract: "List the built-in tools, or call one with a JSON input, on the HR database.",
        discussion: "Example: switchboard tools get_employees '{\"min_increment_pct\": 5, \"max_increment_pct\": 10}'"
    )

    @OptionGroup var storage: DatabaseOption

    @Argument(help: "The tool to call; leave out to list them.")
    var name: String?

    @Argument(help: "The tool's input as JSON.")
    var input = "{}"

    func run() async throws {
        let logger = standardErrorLogger(label: "switchboard.tools")
        let (name, input) = (name, input)
        try await storage.withBuiltInTools(logger: logger) { tools in
            try await Self.call(name, input, in: tools)
        }
    }

    private static func call(_ name: String?, _ input: String, in box: ToolBox) async throws {
        guard let name else {
            for definition in box.definitions {
                print("\(definition.name)\n    \(definition.description.replacingOccurrences(of: "\n", with: " "))")
            }
            return
        }
        guard let tool = box[name] else {
            throw ValidationError("No tool named \(name). Known: \(box.definitions.map(\.name).joined(separator: ", ")).")
        }
        let value: JSONValue
        do {
            value = try JSONValue(parsing: input)
        } catch {
            throw ValidationError("The input is not JSON: \(error).")
        }
        let output = try await tool.execute(value)
        print(output.content)
        if output.isError { throw ExitCode(1) }
    }
}
