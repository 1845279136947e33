import ChatCore
import Foundation

/// `GET /rules/shadow`'s answer: what the candidate rules would have changed since they were loaded.
struct ShadowReport: Encodable {
    struct Placement: Encodable {
        let level: String
        let route: String
    }

    struct Change: Encodable {
        let from: Placement
        let to: Placement
        /// Chats the candidate would have placed so.
        let chats: Int
        /// Of them, the streams that finished (advice and preflights have no stream).
        let streams: Int
        let sessionIds: [String]
        /// Their texts, when the server records them (`--record-queries`).
        let texts: [String]
        /// What those streams cost and took on their live route.
        let costUSD: Double
        let durationMs: Int
    }

    let path: String
    let version: String
    /// When the candidate was loaded: the report counts from then.
    let since: String
    let analysed: Int
    let changedLevel: Int
    let changedRoute: Int
    /// Most chats first.
    let changes: [Change]
    let reloads: Int
    @ExplicitNull var lastReloadError: ReloadErrorReport?

    init(_ state: ShadowRules.State, path: String) {
        self.path = path
        version = state.analyzer.rules.fingerprint
        since = Timestamp.iso8601(state.loadedAt)
        analysed = state.analysed
        changedLevel = state.changedLevel
        changedRoute = state.changedRoute
        changes = state.changes.flatMap { live, targets in
            targets.map { shadow, change in
                Change(from: Placement(level: live.level, route: live.route), to: Placement(level: shadow.level, route: shadow.route),
                       chats: change.chats, streams: change.streams, sessionIds: change.sessionIds, texts: change.texts,
                       costUSD: change.costUSD, durationMs: change.durationMs)
            }
        }.sorted { ($0.chats, $0.from.level, $0.to.level) > ($1.chats, $1.from.level, $1.to.level) }
        reloads = state.reloads
        lastReloadError = state.lastRejection.map(ReloadErrorReport.init)
    }
}
