import Foundation
import Routing
import ConfigFiles
import Synchronization

/// The rules the server answers with, swapped atomically on reload.
///
/// A request takes `active` once and keeps that value to the end, so it sees old or new rules, never a mix.
public final class RulesStore: Sendable {
    /// A rule set in service.
    public struct Active: Sendable {
        public let analyzer: QueryAnalyzer
        public let source: RulesSource
        public let loadedAt: Date
        /// Warnings the file loaded with.
        public let warnings: [Diagnostic]

        public var rules: RuleSet { analyzer.rules }
    }

    /// A file that was refused; the previous rules kept serving.
    public struct Rejection: Sendable {
        public let at: Date
        public let fingerprint: String?
        public let diagnostics: [Diagnostic]
    }

    private struct State {
        var active: Active
        var lastRejection: Rejection?
        var reloads: Int
    }

    private let state: Mutex<State>
    private let metrics: ServerMetrics?
    /// The candidate rules analysed beside these on every chat (`--shadow-rules`), if any.
    public let shadow: ShadowRules?
    /// The process's environment, as a reload checks a provider's `api_key_env` against it (set, and allowed by
    /// `SWITCHBOARD_PROVIDER_KEY_VARS`).
    let environment: [String: String]

    public init(rules: RuleSet, source: RulesSource, warnings: [Diagnostic] = [], loadedAt: Date = Date(),
                metrics: ServerMetrics? = nil, shadow: ShadowRules? = nil,
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.metrics = metrics
        self.shadow = shadow
        self.environment = environment
        let active = Active(analyzer: QueryAnalyzer(rules: rules), source: source, loadedAt: loadedAt, warnings: warnings)
        state = Mutex(State(active: active, lastRejection: nil, reloads: 0))
    }

    public var active: Active { state.withLock { $0.active } }
    public var lastRejection: Rejection? { state.withLock { $0.lastRejection } }
    /// How many times new rules were swapped in since start.
    public var reloads: Int { state.withLock { $0.reloads } }

    func install(_ rules: RuleSet, warnings: [Diagnostic]) {
        let active = Active(analyzer: QueryAnalyzer(rules: rules), source: self.active.source, loadedAt: Date(), warnings: warnings)
        state.withLock {
            $0.active = active
            $0.lastRejection = nil
            $0.reloads += 1
        }
        metrics?.rulesReload(accepted: true)
    }

    func reject(_ diagnostics: [Diagnostic], fingerprint: String?) {
        let rejection = Rejection(at: Date(), fingerprint: fingerprint, diagnostics: diagnostics)
        state.withLock { $0.lastRejection = rejection }
        metrics?.rulesReload(accepted: false)
    }
}
