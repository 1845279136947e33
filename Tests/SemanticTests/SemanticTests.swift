import ConfigFiles
import Foundation
import Semantic
import TestSupport
import Testing

/// The embedding model as `scripts/derive-embeddings.py` wrote it (`.ci/run` derives it once; locally run the script).
enum Model {
    static var directory: String { EmbeddingModel.directory() }
    static var embeddings: StaticEmbeddings? { try? EmbeddingModel.load(directory: directory).get() }
    static var available: Bool { embeddings != nil }

    /// The texts `tokenizers` (the Rust reference) split and the derivation embedded, with its ids and vectors.
    struct Reference: Decodable {
        struct Case: Decodable {
            let text: String
            let ids: [Int32]
            let embedding: [Float]
        }
        let cases: [Case]
    }

    static func reference() throws -> Reference {
        let data = try Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent("reference.json"))
        return try JSONDecoder().decode(Reference.self, from: data)
    }
}

@Suite("Semantic: the tokenizer and the static embeddings against the reference", .enabled(if: Model.available,
       "needs the embedding model: python3 scripts/derive-embeddings.py"))
struct EmbeddingReferenceTests {
    @Test("every reference text gives tokenizers' ids: accents, CJK, punctuation, emoji, controls, long words, special-token literals")
    func tokenizerMatchesReference() throws {
        let embeddings = try #require(Model.embeddings)
        let reference = try Model.reference()
        #expect(reference.cases.count >= 50)
        for item in reference.cases {
            let ids = embeddings.tokenizer.ids(item.text, limit: .max)
            #expect(ids == item.ids, "\(item.text.debugDescription)")
        }
    }

    @Test("every reference text gets the derivation's embedding (cosine above 0.9999)")
    func embeddingsMatchReference() throws {
        let embeddings = try #require(Model.embeddings)
        for item in try Model.reference().cases {
            let vector = embeddings.embed(item.text)
            #expect(vector.count == item.embedding.count)
            let dot = zip(vector, item.embedding).reduce(Float(0)) { $0 + $1.0 * $1.1 }
            let reference = item.embedding.reduce(Float(0)) { $0 + $1 * $1 }
            if reference == 0 {
                #expect(vector.allSatisfy { $0 == 0 }, "\(item.text.debugDescription)")
            } else {
                #expect(dot > 0.9999, "\(item.text.debugDescription): \(dot)")
            }
        }
    }

    @Test("paraphrases are nearer each other than unrelated requests")
    func paraphrasesAreNear() throws {
        let embeddings = try #require(Model.embeddings)
        func cosine(_ a: String, _ b: String) -> Float {
            zip(embeddings.embed(a), embeddings.embed(b)).reduce(0) { $0 + $1.0 * $1.1 }
        }
        #expect(cosine("plot headcount by department", "draw a chart of how many people each department has")
                > cosine("plot headcount by department", "what is Anna Schmidt's email address"))
    }
}

@Suite("Semantic: the model's files are checked", .enabled(if: Model.available, "needs the embedding model"))
struct EmbeddingFilesTests {
    @Test("a model whose file differs from its manifest is refused, saying which file; a missing one says how to make it")
    func checked() throws {
        let source = URL(fileURLWithPath: Model.directory)
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("model-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: copy) }
        for file in ["manifest.json", "tokens.txt", "embeddings.bin"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(file), to: copy.appendingPathComponent(file))
        }
        #expect((try? EmbeddingModel.load(directory: copy.path).get()) != nil)
        let tampered = FileManager.default.temporaryDirectory.appendingPathComponent("model-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: copy, to: tampered)
        defer { try? FileManager.default.removeItem(at: tampered) }
        let handle = try FileHandle(forWritingTo: tampered.appendingPathComponent("tokens.txt"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("extra\n".utf8))
        try handle.close()
        guard case .failure(let problem) = EmbeddingModel.load(directory: tampered.path) else {
            Issue.record("a tampered model was accepted")
            return
        }
        #expect(problem.description.contains("tokens.txt's sha256 is not the manifest's"))
        guard case .failure(let missing) = EmbeddingModel.load(directory: "/nonexistent/model") else {
            Issue.record("a missing model was accepted")
            return
        }
        #expect(missing.description.contains("scripts/derive-embeddings.py"))
    }
}

@Suite("Semantic: the classifier")
struct LevelClassifierTests {
    /// Two-dimensional stand-ins for embeddings: each level a direction.
    private func embed(_ text: String) -> [Float] {
        switch text.first {
        case "a": [1, 0.1]
        case "b": [0.1, 1]
        default: [0.7, 0.7]
        }
    }

    @Test("it learns what separates the levels, gives probabilities that add up to 1, and names the nearest examples")
    func learns() {
        let examples = (0..<20).map { LabelledText(text: $0 % 2 == 0 ? "a\($0)" : "b\($0)", level: $0 % 2 == 0 ? "low" : "high", source: "set:\($0)") }
        let classifier = LevelClassifier(examples: examples, levels: ["low", "high"]) { embed($0) }
        let verdict = classifier.verdict([0.95, 0.05].normalizedForTest, neighbours: 2)
        #expect(verdict.top.level == "low")
        #expect(verdict.top.probability > 0.8)
        #expect(abs(verdict.probabilities.map(\.probability).reduce(0, +) - 1) < 1e-9)
        #expect(verdict.nearest.count == 2 && verdict.nearest.allSatisfy { $0.level == "low" })
        #expect(classifier.training.trainingAccuracy == 1)
    }

    @Test("the same examples give the same model, to the bit")
    func deterministic() {
        let examples = (0..<30).map { LabelledText(text: ["a", "b", "c"][$0 % 3] + "\($0)", level: ["x", "y", "z"][$0 % 3], source: "") }
        let first = LevelClassifier(examples: examples, levels: ["x", "y", "z"]) { embed($0) }
        let second = LevelClassifier(examples: examples, levels: ["x", "y", "z"]) { embed($0) }
        #expect(first.verdict([0.6, 0.8], neighbours: 0) == second.verdict([0.6, 0.8], neighbours: 0))
    }
}

private extension Array where Element == Float {
    var normalizedForTest: [Float] {
        var copy = self
        Vectors.normalize(&copy)
        return copy
    }
}
