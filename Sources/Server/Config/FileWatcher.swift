import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Routing
import ConfigFiles
import ServiceLifecycle
import Synchronization
import UnixSignals

/// What a watched configuration file feeds: it loads new content and keeps the last good one in service.
public protocol ReloadTarget: Sendable {
    /// The fingerprint of the content in service.
    var fingerprint: String { get }
    /// Whether the last content tried was refused (so the same good content again clears the refusal).
    var isRejecting: Bool { get }
    /// Loads new content: swaps it in and says `.reloaded`, or keeps the last good one and says `.rejected`
    /// (recording and logging why).
    func reload(yaml: String, fingerprint: String, path: String, logger: Logger) -> FileWatcher<Self>.Outcome
    /// The file could not be read at all.
    func refuse(_ diagnostic: Diagnostic, logger: Logger)
    /// Other files the content in service was made from (the rules' labelled sets): a change to one reloads too.
    var companionFiles: [String] { get }
}

extension ReloadTarget {
    public var companionFiles: [String] { [] }
}

/// Reloads a configuration file (the rules, the API keys) when it changes, by polling its size, date and
/// inode, and on SIGHUP. A bad file is reported once, not at every poll; the last good content keeps serving.
public final class FileWatcher<Target: ReloadTarget>: Service, Sendable {
    public enum Outcome: Sendable, Equatable {
        case unchanged
        case reloaded
        case rejected
    }

    private struct FileStamp: Equatable {
        var size: Int
        var modifiedSeconds: Int
        var modifiedNanoseconds: Int
        var inode: UInt
    }

    private struct State {
        var stamp: FileStamp?
        /// The companion files' stamps, by path, as last read.
        var companions: [String: FileStamp?] = [:]
        /// Fingerprint of the last content tried, good or bad, so a bad file is reported once, not every poll.
        var lastTried: String?
    }

    let path: String
    let target: Target
    let interval: Duration
    let logger: Logger
    private let state: Mutex<State>

    public init(path: String, target: Target, interval: Duration = .milliseconds(250), logger: Logger) {
        self.path = path
        self.target = target
        self.interval = interval
        self.logger = logger
        self.state = Mutex(State(stamp: Self.stamp(of: path), companions: Self.stamps(of: target.companionFiles),
                                 lastTried: target.fingerprint))
    }

    private static func stamps(of paths: [String]) -> [String: FileStamp?] {
        Dictionary(paths.map { ($0, stamp(of: $0)) }, uniquingKeysWith: { first, _ in first })
    }

    public func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in hangups {
                        self.logger.info("SIGHUP: reloading", metadata: ["path": "\(self.path)"])
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

    /// Checks the file and loads it if it changed. `force` rereads it even when its size and date are the same
    /// (SIGHUP), and retries content that was refused before.
    @discardableResult
    public func reload(force: Bool) -> Outcome {
        // The lock serialises reloads from the poller and from SIGHUP; a configuration file is small.
        state.withLock { state in
            let stamp = Self.stamp(of: path)
            let companions = Self.stamps(of: target.companionFiles)
            // A changed companion reloads the file whose content it is part of, even when the file itself is the same.
            let companionChanged = companions != state.companions
            let force = force || companionChanged
            guard force || stamp != state.stamp else { return .unchanged }
            state.stamp = stamp
            defer { state.companions = Self.stamps(of: target.companionFiles) }
            switch ConfigFile.read(path) {
            case .failure(let unreadable):
                guard force || state.lastTried != nil else { return .unchanged }
                state.lastTried = nil
                target.refuse(unreadable.diagnostic, logger: logger)
                return .rejected
            case .success(let file):
                guard force || file.fingerprint != state.lastTried else { return .unchanged }
                state.lastTried = file.fingerprint
                if !companionChanged, file.fingerprint == target.fingerprint, !target.isRejecting { return .unchanged }
                return target.reload(yaml: file.text, fingerprint: file.fingerprint, path: path, logger: logger)
            }
        }
    }

    /// One `stat(2)`: `FileManager.attributesOfItem` builds a dictionary of every attribute and looks the owner
    /// and group up by name each time, about a millisecond per poll.
    private static func stamp(of path: String) -> FileStamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        #if canImport(Darwin)
        let modified = info.st_mtimespec
        #else
        let modified = info.st_mtim
        #endif
        return FileStamp(size: Int(info.st_size), modifiedSeconds: Int(modified.tv_sec),
                         modifiedNanoseconds: Int(modified.tv_nsec), inode: UInt(info.st_ino))
    }
}
