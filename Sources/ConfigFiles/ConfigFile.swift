import Crypto
import Foundation
import Routing

/// The one reader of configuration files (rules, API keys, evaluation sets): at most `maxBytes`, UTF-8 text, and
/// the content's fingerprint. What cannot be read becomes a diagnostic naming the file, never a thrown error.
public enum ConfigFile {
    /// The largest configuration file read.
    public static let maxBytes = 1 << 20

    /// A file's text and the fingerprint of its bytes (shown as `rulesVersion` for rules).
    public struct Contents: Sendable {
        public let text: String
        public let fingerprint: String
    }

    /// A file that could not be read at all.
    public struct Unreadable: Error, Sendable {
        public let diagnostic: Diagnostic
    }

    /// The content fingerprint: `sha256:` and the hex digest.
    public static func fingerprint(of bytes: some DataProtocol) -> String {
        "sha256:" + SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    /// The file's text and fingerprint, or why it cannot be used.
    public static func read(_ path: String) -> Result<Contents, Unreadable> {
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber, size.intValue > maxBytes {
            return .failure(Unreadable(diagnostic: Diagnostic(
                .error, "the file is \(size.intValue) bytes; a configuration file may be at most \(maxBytes >> 20) MiB", path: path)))
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file"
            return .failure(Unreadable(diagnostic: Diagnostic(.error, reason, path: path)))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return .failure(Unreadable(diagnostic: Diagnostic(.error, "the file is not UTF-8 text", path: path)))
        }
        return .success(Contents(text: text, fingerprint: fingerprint(of: data)))
    }
}
