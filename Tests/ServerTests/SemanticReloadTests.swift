import Foundation
import Hummingbird
import HummingbirdTesting
import TestSupport
import Testing
import ConfigFiles
import Routing
@testable import Server

private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

@Suite("The semantic stage, live", .serialized, .enabled(if: (try? EmbeddingModel.load(directory: EmbeddingModel.directory()).get()) != nil,
       "needs the embedding model: python3 scripts/derive-embeddings.py"))
struct SemanticReloadTests {
    private func analyze(_ client: some TestClientProtocol, _ text: String) async throws -> [String: Any] {
        try await client.execute(uri: "/mcp/chat/analyze", method: .post, headers: jsonHeaders, body: chatBody(text)) { try json($0.body) }
    }

    @Test("saving the labelled set retrains the stage on the running server: the chat added goes where its label says; GET /rules shows the stage",
          .timeLimit(.minutes(3)), .cpuQuiet)
    func savingTheSetRetrains() async throws {
        let rules = try TemporaryRules(try String(contentsOf: repository.appendingPathComponent("rules.yaml"), encoding: .utf8))
        defer { rules.remove() }
        let set = rules.directory.appendingPathComponent("routing-eval.yaml")
        let original = try String(contentsOf: repository.appendingPathComponent("routing-eval.yaml"), encoding: .utf8)
        try Data(original.utf8).write(to: set)
        var config = configuration(rules: rules.path)
        config.rulesPollInterval = .milliseconds(50)
        let app = try await buildApplication(configuration: config)
        try await app.test(.live) { client in
            let status = try await client.execute(uri: "/rules", method: .get) { try json($0.body) }
            let semantic = try #require(status["semantic"] as? [String: Any])
            #expect(semantic["status"] as? String == "on" && (semantic["examples"] as? Int ?? 0) > 700, "\(semantic)")
            let text = "give me the lay of the land for the Dublin crew"
            let before = try await analyze(client, text)["complexity"] as? String
            let wanted = before == "complex" ? "simple" : "complex"
            try Data((original + "\n  - { query: \"\(text)\", level: \(wanted) }\n").utf8).write(to: set)
            #expect(try await eventually(within: .seconds(5), every: .milliseconds(50)) {
                try await analyze(client, text)["complexity"] as? String == wanted
            })
            let after = try await analyze(client, text)
            #expect((after["semantic"] as? [String: Any])?["decidedBy"] as? String == "example")
        }
    }

    @Test("without the model the server starts on the rules alone and GET /rules says why")
    func startsWithoutTheModel() async throws {
        let rules = try TemporaryRules(try String(contentsOf: repository.appendingPathComponent("rules.yaml"), encoding: .utf8))
        defer { rules.remove() }
        try FileManager.default.copyItem(at: repository.appendingPathComponent("routing-eval.yaml"),
                                         to: rules.directory.appendingPathComponent("routing-eval.yaml"))
        let outcome = RuleSetLoader.load(yaml: try String(contentsOfFile: rules.path, encoding: .utf8), path: rules.path, fingerprint: "x",
                                         semantic: EmbeddingModel.inputs(rulesPath: rules.path, environment: [EmbeddingModel.setting: "/nonexistent"]))
        let store = RulesStore(rules: try #require(outcome.accepted), source: .file(rules.path), warnings: outcome.diagnostics)
        let status = RulesStatusResponse(store)
        #expect(status.semantic.status == "off")
        #expect(status.semantic.reason?.contains("derive-embeddings.py") == true)
        #expect(status.warnings.contains { $0.contains("the rules decide alone") })
    }
}
