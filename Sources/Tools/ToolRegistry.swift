import ChatCore
import Foundation
import Logging

/// Two tools with one name: reported, never silently shadowed.
public struct ToolClash: Error, Sendable, CustomStringConvertible {
    public let name: String
    public let existingSource: String
    public let newSource: String

    public var description: String {
        "tool \"\(name)\" from \(newSource) clashes with the one from \(existingSource); the first one is kept"
    }
}

/// The tools a server offers, from every source (built-in, MCP servers), each wrapped so its input is
/// validated against its schema and its result is capped.
public struct ToolRegistry: Sendable {
    /// Largest tool result sent to the model, in UTF-8 bytes.
    public var maxResultBytes: Int

    private var tools: [(tool: any Tool, source: String)] = []

    public init(maxResultBytes: Int = 64 << 10) {
        self.maxResultBytes = maxResultBytes
    }

    /// Adds `tool`; throws (and keeps the first) when the name is taken.
    public mutating func register(_ tool: any Tool, source: String) throws(ToolClash) {
        if let existing = tools.first(where: { $0.tool.definition.name == tool.definition.name }) {
            throw ToolClash(name: tool.definition.name, existingSource: existing.source, newSource: source)
        }
        tools.append((tool, source))
    }

    /// Adds each tool, returning the clashes instead of stopping at the first.
    @discardableResult
    public mutating func register(_ newTools: [any Tool], source: String) -> [ToolClash] {
        var clashes: [ToolClash] = []
        for tool in newTools {
            do { try register(tool, source: source) } catch { clashes.append(error) }
        }
        return clashes
    }

    public var names: [String] { tools.map(\.tool.definition.name) }

    /// Where each tool came from ("built-in", "MCP server \"files\"", …), by name.
    public var sources: [String: String] {
        Dictionary(tools.map { ($0.tool.definition.name, $0.source) }, uniquingKeysWith: { first, _ in first })
    }

    /// The registered tools, validated and capped, for the agentic loop.
    public var toolBox: ToolBox {
        ToolBox(tools.map { GuardedTool(wrapped: $0.tool, maxResultBytes: maxResultBytes) })
    }
}

/// A tool behind input validation and a result cap. Its errors become results the model can read: a `ToolError`
/// as written (it is meant for the model), any other error as a short generic sentence, because database errors
/// carry SQL and transport errors URLs; the full error goes to the log.
struct GuardedTool: Tool {
    let wrapped: any Tool
    let maxResultBytes: Int
    var logger = Logger(label: "switchboard.tools")

    var definition: ToolDefinition { wrapped.definition }

    func execute(_ input: JSONValue) async throws -> ToolOutput {
        let problems = SchemaValidator.problems(in: input, schema: definition.inputSchema)
        guard problems.isEmpty else {
            return ToolOutput(content: "Invalid input for \(definition.name): " + problems.joined(separator: "; "), isError: true)
        }
        var output: ToolOutput
        do {
            output = try await wrapped.execute(input)
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as ToolError {
            return ToolOutput(content: error.message, isError: true)
        } catch {
            logger.error("tool failed", metadata: [
                "tool": "\(definition.name)", "error": "\(Redaction.credentials(in: String(reflecting: error)))",
            ])
            return ToolOutput(content: "\(definition.name) failed with an internal error; the server's log has the details.",
                              isError: true)
        }
        if output.content.utf8.count > maxResultBytes {
            let total = output.content.utf8.count
            var cut = String(decoding: output.content.utf8.prefix(maxResultBytes), as: UTF8.self)
            // Drop a character the cut may have split.
            if cut.last == "\u{FFFD}" { cut.removeLast() }
            output.content = cut + "\n[truncated: the result was \(total) bytes, over the \(maxResultBytes)-byte limit; "
                + "ask for fewer rows with limit/offset or narrower filters]"
            output.truncated = true
        }
        return output
    }
}

/// A failure a tool reports in words meant for the model ("no employee with id 9999").
public struct ToolError: Error, Sendable, CustomStringConvertible {
    public let message: String

    public var description: String { message }

    public init(_ message: String) {
        self.message = message
    }
}
