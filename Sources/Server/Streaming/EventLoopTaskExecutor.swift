import NIOCore

/// A task executor that runs its jobs on one NIO event loop: a stream's producer prefers its client connection's
/// loop, so a relayed event is read from the upstream, encoded and written on one thread, with no hand-over to
/// Swift's pool and back. A model call made from a task on this loop takes its connection on the same loop
/// (`UpstreamConnections`).
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { [self] in
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
