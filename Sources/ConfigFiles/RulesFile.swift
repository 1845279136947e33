import Crypto
import Foundation
import Routing

/// Loads rules from where they come from (`RulesSource`), read by `ConfigFile`.
public enum RulesFile {
    /// Loads `source`; an unreadable file becomes an error diagnostic, never a thrown error.
    public static func load(_ source: RulesSource) -> RuleSetLoader.Outcome {
        switch source {
        case .embedded:
            return RuleSetLoader.load(yaml: DefaultRules.yaml, path: DefaultRules.path,
                                      fingerprint: ConfigFile.fingerprint(of: Array(DefaultRules.yaml.utf8)),
                                      semantic: EmbeddingModel.inputs(rulesPath: nil))
        case .file(let path):
            switch ConfigFile.read(path) {
            case .success(let file):
                // A provider's key variable must be set where the rules are served.
                return RuleSetLoader.load(yaml: file.text, path: path, fingerprint: file.fingerprint,
                                          environment: Set(ProcessInfo.processInfo.environment.keys),
                                          readableKeyVariables: ProviderKeyVariables.readable(in: ProcessInfo.processInfo.environment),
                                          semantic: EmbeddingModel.inputs(rulesPath: path))
            case .failure(let unreadable):
                return .rejected([unreadable.diagnostic])
            }
        }
    }

    /// The rules' text as it is now (on disk, or the built-in rules), for suggestions of edits to it (calibration);
    /// empty when the file cannot be read.
    public static func text(_ source: RulesSource) -> String {
        switch source {
        case .embedded: DefaultRules.yaml
        case .file(let path): (try? ConfigFile.read(path).get().text) ?? ""
        }
    }
}
