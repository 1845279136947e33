import Foundation
import Logging
import Routing
import RulesFiles
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Reloads the rules file when it changes (polling its size, date and inode) and on SIGHUP.
///
/// A file that parses, validates and passes its examples is swapped in; any other is logged with its
/// diagnostics, shown in `GET /rules`, and the last good rules keep serving.
public final class RulesWatcher: Service, Sendable {
    public enum Outcome: Sendable, Equatable {
        case unchanged
        case reloaded
        case rejected
    }

    private struct FileStamp: Equatable {
        var size: Int
        var modified: Date
        var inode: Int
    }

    private struct State {
        var stamp: FileStamp?
        /// Fingerprint of the last content tried, good or bad, so a bad file is reported once, not every poll.
        var lastTried: String?
    }

    let path: String
    let store: RulesStore
    let interval: Duration
    let logger: Logger
    private let state: Mutex<State>

    public init(path: String, store: RulesStore, interval: Duration = .milliseconds(250), logger: Logger) {
        self.path = path
        self.store = store
        self.interval = interval
        self.logger = logger
        self.state = Mutex(State(stamp: Self.stamp(of: path), lastTried: store.active.rules.fingerprint))
    }

    public func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in hangups {
                        self.logger.info("SIGHUP: reloading rules", metadata: ["path": "\(self.path)"])
                        self.reload(force: true)
                    }
                }
                while !Task.isCancelled {
                    try? await Task.sleep(for: self.interval)
                    self.reload(force: false)
                }
                group.cancelAll()
            }
        }
    }

    /// Checks the file and swaps in its rules if they changed and are good. `force` rereads it even when its
    /// size and date are the same (SIGHUP), and retries content that was rejected before.
    @discardableResult
    public func reload(force: Bool) -> Outcome {
        // The lock serialises reloads from the poller and from SIGHUP; a rules file is small, so reading it here is brief.
        state.withLock { state in
            let stamp = Self.stamp(of: path)
            guard force || stamp != state.stamp else { return .unchanged }
            state.stamp = stamp
            switch RulesFile.read(path) {
            case .failure(let unreadable):
                let diagnostic = unreadable.diagnostic
                guard force || state.lastTried != nil else { return .unchanged }
                state.lastTried = nil
                store.reject([diagnostic], fingerprint: nil)
                logger.error("rules not reloaded, keeping the last good rules", metadata: ["problem": "\(diagnostic)"])
                return .rejected
            case .success(let (yaml, fingerprint)):
                guard force || fingerprint != state.lastTried else { return .unchanged }
                state.lastTried = fingerprint
                if fingerprint == store.active.rules.fingerprint, store.lastRejection == nil { return .unchanged }
                let outcome = RuleSetLoader.load(yaml: yaml, path: path, fingerprint: fingerprint)
                guard let rules = outcome.accepted else {
                    store.reject(outcome.diagnostics, fingerprint: fingerprint)
                    let problems = outcome.diagnostics.map(\.description).joined(separator: "\n")
                    logger.error("rules not reloaded, keeping the last good rules:\n\(problems)", metadata: ["path": "\(path)"])
                    return .rejected
                }
                store.install(rules, warnings: outcome.diagnostics)
                for warning in outcome.diagnostics { logger.warning("\(warning)") }
                logger.info("rules reloaded", metadata: [
                    "path": "\(path)", "version": "\(fingerprint)",
                    "rules": "\(rules.rules.count)", "levels": "\(rules.levels.count)",
                ])
                return .reloaded
            }
        }
    }

    private static func stamp(of path: String) -> FileStamp? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        return FileStamp(size: (attributes[.size] as? NSNumber)?.intValue ?? -1,
                         modified: attributes[.modificationDate] as? Date ?? .distantPast,
                         inode: (attributes[.systemFileNumber] as? NSNumber)?.intValue ?? -1)
    }
}
