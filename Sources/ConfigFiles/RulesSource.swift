import Foundation
import Routing

/// Where the rules come from: a file on disk, or the copy of rules.yaml built into the binary.
public enum RulesSource: Sendable, Hashable {
    case file(String)
    case embedded

    /// `--rules PATH` if given, else `./rules.yaml` if it exists, else the embedded defaults.
    public static func resolve(explicitPath: String?, fileManager: FileManager = .default) -> RulesSource {
        if let explicitPath { return .file(explicitPath) }
        return fileManager.fileExists(atPath: "rules.yaml") ? .file("rules.yaml") : .embedded
    }

    public var path: String {
        switch self {
        case .file(let path): path
        case .embedded: DefaultRules.path
        }
    }
}
