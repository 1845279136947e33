import Crypto
import Foundation
import Routing

/// Reads a rules file and loads it; the only place rules bytes come from disk.
public enum RulesFile {
    /// The largest configuration file read (rules, API keys, an evaluation set).
    public static let maxBytes = 1 << 20

    /// The content fingerprint shown as `rulesVersion`.
    public static func fingerprint(of bytes: some DataProtocol) -> String {
        "sha256:" + SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    /// Loads `source`; an unreadable file becomes an error diagnostic, never a thrown error.
    public static func load(_ source: RulesSource) -> RuleSetLoader.Outcome {
        switch source {
        case .embedded:
            return RuleSetLoader.load(yaml: DefaultRules.yaml, path: DefaultRules.path,
                                      fingerprint: fingerprint(of: Array(DefaultRules.yaml.utf8)))
        case .file(let path):
            switch read(path) {
            case .success(let (yaml, fingerprint)):
                // A provider's key variable must be set where the rules are served.
                return RuleSetLoader.load(yaml: yaml, path: path, fingerprint: fingerprint,
                                          environment: Set(ProcessInfo.processInfo.environment.keys))
            case .failure(let unreadable):
                return .rejected([unreadable.diagnostic])
            }
        }
    }

    /// The file's text and fingerprint, or why it cannot be used.
    public static func read(_ path: String) -> Result<(String, String), UnreadableRules> {
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber, size.intValue > maxBytes {
            return .failure(UnreadableRules(diagnostic: Diagnostic(
                .error, "the file is \(size.intValue) bytes; a configuration file may be at most \(maxBytes >> 20) MiB", path: path)))
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file"
            return .failure(UnreadableRules(diagnostic: Diagnostic(.error, reason, path: path)))
        }
        guard let yaml = String(data: data, encoding: .utf8) else {
            return .failure(UnreadableRules(diagnostic: Diagnostic(.error, "the file is not UTF-8 text", path: path)))
        }
        return .success((yaml, fingerprint(of: data)))
    }
}

/// A rules file that could not be read at all.
public struct UnreadableRules: Error {
    public let diagnostic: Diagnostic
}
