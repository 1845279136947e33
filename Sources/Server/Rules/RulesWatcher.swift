import ConfigFiles
import ChatCore
import Foundation
import Logging
import Routing

/// Reloads the rules file when it changes and on SIGHUP: a file that parses, validates and passes its examples
/// is swapped in; any other is logged with its diagnostics, shown in `GET /rules`, and the last good rules keep
/// serving.
public typealias RulesWatcher = FileWatcher<RulesStore>

extension FileWatcher where Target == RulesStore {
    public convenience init(path: String, store: RulesStore, interval: Duration = .milliseconds(250), logger: Logger) {
        self.init(path: path, target: store, interval: interval, logger: logger)
    }
}

extension RulesStore: ReloadTarget {
    public var fingerprint: String { active.rules.fingerprint }
    public var isRejecting: Bool { lastRejection != nil }

    public func reload(yaml: String, fingerprint: String, path: String, logger: Logger) -> RulesWatcher.Outcome {
        let outcome = Self.loadForReload(yaml: yaml, fingerprint: fingerprint, path: path, logger: logger,
                                         refusal: "rules not reloaded, keeping the last good rules", environment: environment)
        guard let rules = outcome.accepted else {
            reject(outcome.diagnostics, fingerprint: fingerprint)
            return .rejected
        }
        let before = active.rules.providers
        install(rules, warnings: outcome.diagnostics)
        // Where a provider's key goes is worth an operator's eye whenever it changes.
        for (name, provider) in rules.providers.sorted(by: { $0.key < $1.key }) {
            guard let old = before[name] else { continue }
            if old.baseURL != provider.baseURL || old.apiKeyEnv != provider.apiKeyEnv {
                logger.warning("a reload changed where a provider's key is sent", metadata: [
                    "provider": "\(name)", "base_url": "\(Redaction.credentials(in: provider.baseURL ?? "(default)"))",
                    "previous_base_url": "\(Redaction.credentials(in: old.baseURL ?? "(default)"))",
                    "api_key_env": "\(provider.apiKeyEnv ?? "-")", "previous_api_key_env": "\(old.apiKeyEnv ?? "-")",
                ])
            }
        }
        for warning in outcome.diagnostics { logger.warning("\(warning)") }
        logger.info("rules reloaded", metadata: [
            "path": "\(path)", "version": "\(fingerprint)", "rules": "\(rules.rules.count)", "levels": "\(rules.levels.count)",
        ])
        return .reloaded
    }

    /// A changed rules file read with the same checks as at start (a provider's key variable must be set); a refused
    /// one is logged with its diagnostics under `refusal`.
    static func loadForReload(yaml: String, fingerprint: String, path: String, logger: Logger, refusal: String,
                              environment: [String: String] = ProcessInfo.processInfo.environment) -> RuleSetLoader.Outcome {
        let outcome = RuleSetLoader.load(yaml: yaml, path: path, fingerprint: fingerprint, environment: Set(environment.keys),
                                         readableKeyVariables: ProviderKeyVariables.readable(in: environment),
                                         semantic: EmbeddingModel.inputs(rulesPath: path, environment: environment))
        if outcome.accepted == nil {
            let problems = outcome.diagnostics.map(\.description).joined(separator: "\n")
            logger.error("\(refusal):\n\(problems)", metadata: ["path": "\(path)"])
        }
        return outcome
    }

    public func refuse(_ diagnostic: Diagnostic, logger: Logger) {
        reject([diagnostic], fingerprint: nil)
        logger.error("rules not reloaded, keeping the last good rules", metadata: ["problem": "\(diagnostic)"])
    }
}

extension RulesStore {
    /// The labelled sets the rules in service name (`semantic.examples`), as paths beside the rules file: saving
    /// one retrains the semantic stage.
    public var companionFiles: [String] {
        guard case .file(let path) = active.source, let settings = active.rules.semanticSettings else { return [] }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        return settings.exampleFiles.map { $0.path.hasPrefix("/") ? $0.path : folder.appendingPathComponent($0.path).path }
    }
}
