import ChatCore
import ConfigFiles
import Foundation
import Logging
import Routing
import Synchronization

/// A candidate rules file (`--shadow-rules`) analysed beside the live one on every chat, never routing anything,
/// and what it would have changed since it was loaded: chats analysed, how many would move level and route, per
/// from → to pair the count, some session ids and texts (when the server records texts), and what those chats cost
/// and took on their live route. Reloaded live like the rules; an invalid file is refused with its diagnostics and
/// the last good candidate keeps being compared. A reload starts a new report.
public final class ShadowRules: Sendable {
    /// Where a chat goes: a level and its route.
    public struct Placement: Sendable, Hashable {
        public let level: String
        public let route: String
    }

    /// One chat's two analyses, taken when it was analysed; booked when its stream ends.
    public struct Verdict: Sendable {
        let generation: Int
        let live: Placement
        let shadow: Placement
        var changed: Bool { live != shadow }
    }

    /// A change's tally: the chats, and of the streams that finished, their sessions, texts, cost and time.
    struct Change {
        var chats = 0
        var streams = 0
        var sessionIds: [String] = []
        var texts: [String] = []
        var costUSD = 0.0
        var durationMs = 0
    }

    struct State {
        var analyzer: QueryAnalyzer
        var loadedAt: Date
        var generation = 0
        var analysed = 0
        var changedLevel = 0
        var changedRoute = 0
        var changes: [Placement: [Placement: Change]] = [:]
        var reloads = 0
        var lastRejection: RulesStore.Rejection?
    }

    /// Session ids and texts kept per change.
    static let examples = 5

    let path: String
    private let state: Mutex<State>

    public init(rules: RuleSet, path: String, loadedAt: Date = Date()) {
        self.path = path
        state = Mutex(State(analyzer: QueryAnalyzer(rules: rules), loadedAt: loadedAt))
    }

    /// The candidate's analysis of `input` beside the live `analysis`, counted; `nil` when the candidate finds no
    /// text to analyse.
    /// `forcedRoute`: the route the request chose, which the candidate takes too when it has it.
    public func compare(_ input: AnalysisInput, live analysis: Analysis, forcedRoute: String? = nil) -> Verdict? {
        let analyzer = state.withLock { $0.analyzer }
        guard var shadow = analyzer.analyze(input) else { return nil }
        if let forcedRoute, let route = analyzer.rules.routes[forcedRoute] { shadow = shadow.routed(to: route) }
        let live = Placement(level: analysis.level.name, route: analysis.route.name)
        let candidate = Placement(level: shadow.level.name, route: shadow.route.name)
        return state.withLock { state in
            state.analysed += 1
            if live.level != candidate.level { state.changedLevel += 1 }
            if live.route != candidate.route { state.changedRoute += 1 }
            if live != candidate { state.changes[live, default: [:]][candidate, default: Change()].chats += 1 }
            return Verdict(generation: state.generation, live: live, shadow: candidate)
        }
    }

    /// A finished stream whose chat the candidate would have placed elsewhere: its session, text, cost and time
    /// (ignored when the candidate was reloaded since).
    func book(_ verdict: Verdict, sessionId: String, text: String?, costUSD: Double?, duration: Duration) {
        guard verdict.changed else { return }
        state.withLock { state in
            guard state.generation == verdict.generation else { return }
            var change = state.changes[verdict.live]?[verdict.shadow] ?? Change()
            change.streams += 1
            if change.sessionIds.count < Self.examples { change.sessionIds.append(sessionId) }
            if let text, change.texts.count < Self.examples { change.texts.append(text) }
            change.costUSD += costUSD ?? 0
            change.durationMs += Int(duration.inMilliseconds)
            state.changes[verdict.live, default: [:]][verdict.shadow] = change
        }
    }

    /// The report since the candidate was loaded.
    var report: ShadowReport {
        state.withLock { state in
            ShadowReport(state, path: path)
        }
    }

    /// Swaps in a new candidate and starts a new report.
    func install(_ rules: RuleSet) {
        state.withLock { state in
            state = State(analyzer: QueryAnalyzer(rules: rules), loadedAt: Date(), generation: state.generation + 1,
                          reloads: state.reloads + 1)
        }
    }

    func reject(_ diagnostics: [Diagnostic], fingerprint: String?) {
        state.withLock { $0.lastRejection = RulesStore.Rejection(at: Date(), fingerprint: fingerprint, diagnostics: diagnostics) }
    }

    var candidateFingerprint: String { state.withLock { $0.analyzer.rules.fingerprint } }
    var rejecting: Bool { state.withLock { $0.lastRejection != nil } }
}

/// Reloads the candidate when its file changes and on SIGHUP, as the rules are.
public typealias ShadowRulesWatcher = FileWatcher<ShadowRules>

extension ShadowRules: ReloadTarget {
    public var fingerprint: String { candidateFingerprint }
    public var isRejecting: Bool { rejecting }

    public func reload(yaml: String, fingerprint: String, path: String, logger: Logger) -> ShadowRulesWatcher.Outcome {
        let outcome = RulesStore.loadForReload(yaml: yaml, fingerprint: fingerprint, path: path, logger: logger,
                                               refusal: "shadow rules not reloaded, comparing the last good candidate")
        guard let rules = outcome.accepted else {
            reject(outcome.diagnostics, fingerprint: fingerprint)
            return .rejected
        }
        install(rules)
        logger.info("shadow rules reloaded: a new report starts", metadata: ["path": "\(path)", "version": "\(fingerprint)"])
        return .reloaded
    }

    public func refuse(_ diagnostic: Diagnostic, logger: Logger) {
        reject([diagnostic], fingerprint: nil)
        logger.error("shadow rules not reloaded", metadata: ["problem": "\(diagnostic)"])
    }
}
