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
        let outcome = RuleSetLoader.load(yaml: yaml, path: path, fingerprint: fingerprint)
        guard let rules = outcome.accepted else {
            reject(outcome.diagnostics, fingerprint: fingerprint)
            let problems = outcome.diagnostics.map(\.description).joined(separator: "\n")
            logger.error("rules not reloaded, keeping the last good rules:\n\(problems)", metadata: ["path": "\(path)"])
            return .rejected
        }
        install(rules, warnings: outcome.diagnostics)
        for warning in outcome.diagnostics { logger.warning("\(warning)") }
        logger.info("rules reloaded", metadata: [
            "path": "\(path)", "version": "\(fingerprint)", "rules": "\(rules.rules.count)", "levels": "\(rules.levels.count)",
        ])
        return .reloaded
    }

    public func refuse(_ diagnostic: Diagnostic, logger: Logger) {
        reject([diagnostic], fingerprint: nil)
        logger.error("rules not reloaded, keeping the last good rules", metadata: ["problem": "\(diagnostic)"])
    }
}
