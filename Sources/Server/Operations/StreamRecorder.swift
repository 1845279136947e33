import ChatCore
import Logging
import ServiceLifecycle
import Storage
import Synchronization

/// Keeps finished streams for calibration without making a stream wait on the database: `record` appends to a
/// bounded buffer, and this service writes the buffer in one transaction every `interval` (and once more when the
/// server stops). If the database falls so far behind that the buffer fills, further records are dropped, counted
/// in `switchboard_stream_records_dropped_total`.
public final class StreamRecorder: Service, Sendable {
    public let records: StreamRecords
    private let capacity: Int
    private let interval: Duration
    private let metrics: ServerMetrics
    private let logger: Logger
    private let pending = Mutex<[StreamRecord]>([])
    /// Held while a batch is written: a flush that starts meanwhile waits for it, so when `flush()` returns, every
    /// record given before it was called is stored (or counted as dropped), whoever took it from the buffer.
    private let writing = AsyncMutex()
    /// The longest one batch's write may take; a database that takes longer loses the batch (counted as dropped).
    static let writeLimit: Duration = .seconds(10)

    public init(records: StreamRecords, capacity: Int = 4096, interval: Duration = .seconds(1), metrics: ServerMetrics,
                logger: Logger) {
        self.records = records
        self.capacity = capacity
        self.interval = interval
        self.metrics = metrics
        self.logger = logger
    }

    func record(_ record: StreamRecord) {
        let kept = pending.withLock { pending in
            guard pending.count < capacity else { return false }
            pending.append(record)
            return true
        }
        if !kept { metrics.streamRecordDropped() }
    }

    /// Writes what is pending now, after any batch being written already; a failure is logged and the batch dropped
    /// (calibration is a statistic).
    public func flush() async {
        await writing.withLock {
            let batch = pending.withLock { pending in
                defer { pending.removeAll(keepingCapacity: true) }
                return pending
            }
            guard !batch.isEmpty else { return }
            let records = self.records
            do {
                guard try await withTimeout(Self.writeLimit, { try await records.insert(batch) }) != nil else {
                    throw StorageTimeout(limit: Self.writeLimit)
                }
            } catch {
                metrics.streamRecordDropped(count: batch.count)
                logger.warning("stream records not stored", metadata: ["count": "\(batch.count)", "error": "\(error)"])
            }
        }
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: self.interval)
                await self.flush()
            }
        }
        await flush()
    }
}

/// A batch of records the database did not take within `StreamRecorder.writeLimit`.
struct StorageTimeout: Error, CustomStringConvertible {
    let limit: Duration
    var description: String { "the database did not store the batch within \(limit.inMilliseconds) ms" }
}
