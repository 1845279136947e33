@testable import ChatCore
import Testing

private struct Named: Tool {
    let definition: ToolDefinition
    init(_ name: String) { definition = ToolDefinition(name: name, description: name, inputSchema: ["type": "object"]) }
    func execute(_ input: JSONValue) async throws -> ToolOutput { ToolOutput(content: definition.name) }
}

/// Whether two arrays share their storage (the model clients find a tool set's rendering by it first).
private func sameStorage(_ a: [ToolDefinition], _ b: [ToolDefinition]) -> Bool {
    a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in a.baseAddress == b.baseAddress } }
}

@Suite("Tool box")
struct ToolBoxTests {
    @Test("a key's subset is made once: the same names give the same box, its definitions the same array; other names another")
    func subsetsKept() {
        let box = ToolBox(["a", "b", "c", "d"].map { Named($0) })
        let first = box.only(["b", "a", "zzz"])
        let again = box.only(["a", "b", "zzz"])
        #expect(first.definitions.map(\.name) == ["a", "b"])
        #expect(first["c"] == nil && first["a"] != nil)
        #expect(sameStorage(first.definitions, again.definitions))
        let other = box.only(["c"])
        #expect(other.definitions.map(\.name) == ["c"])
        #expect(!sameStorage(first.definitions, other.definitions))
        #expect(sameStorage(box.only(nil).definitions, box.definitions))
        // Another box keeps its own subsets.
        let elsewhere = ToolBox(["a", "b"].map { Named($0) })
        #expect(!sameStorage(elsewhere.only(["a", "b"]).definitions, first.definitions))
    }

    @Test("past the limit of kept subsets, each is still right, made anew")
    func subsetsBounded() {
        let names = (0..<(ToolSubsets.limit + 10)).map { "t\($0)" }
        let box = ToolBox(names.map { Named($0) })
        for name in names { #expect(box.only([name]).definitions.map(\.name) == [name]) }
        let last: Set<String> = [names.last!]
        #expect(box.only(last).definitions.map(\.name) == [names.last!])
        #expect(!sameStorage(box.only(last).definitions, box.only(last).definitions))
        #expect(sameStorage(box.only([names[0]]).definitions, box.only([names[0]]).definitions))
    }
}
